"""The decoder's noise: what a VQ-VAE's decoder leaves out of a micrograph, put back as random noise of the same
spectrum (``postprocess.image_noise: residual``).

A decoder trained with a squared error returns the mean of the micrographs its codes stand for: detector noise and
the finest texture average out, so a decoded micrograph has too little power at high spatial frequencies even where
its edges are right (the reconstruction step's image-family ratios show it before any prior samples a code). A VAE
would sample its likelihood instead of taking its mean; this is that sample, with the likelihood measured rather than
assumed:

- ``residuals``: the residuals r = real - reconstruction of the VQ-VAE's own training patches (codes/recon.npz
  against the real patches, float, per channel), each patch's mean removed (a brightness offset is not noise);
- ``residual_amplitudes``: |FFT(r)| per patch and channel, the amplitude spectrum, anisotropy included;
- ``add_residual_noise``: for synthetic image i, a residual patch j drawn at random (seeded) lends its amplitude
  spectrum A_j; the phases are random: theta = the phase of the FFT of white Gaussian noise, which is
  Hermitian-symmetric, so n = real(IFFT(A_j exp(i theta))) is a real field (phase randomisation, the classic
  surrogate of a stationary signal: the same power spectrum, no structure). One theta serves all channels, so the
  channels keep their correlation (detector noise is shared by R, G and B). The image becomes
  clip(round(image + n), 0, 255).

The noise knows nothing of the mask: it adds no object and moves no boundary; it only restores the power the decoder
averaged away, at the level measured on the training data.
"""

import numpy as np

from dualgen.core.errors import DualgenError


def _float_stack(images):
    im = np.asarray(images)
    if im.ndim == 3:
        im = im[..., None]
    if im.ndim != 4 or not len(im):
        raise DualgenError(f"noise: images of shape {im.shape}: expected a non-empty (N, H, W, C) stack")
    return im.astype(np.float64)


def residuals(real_images, recon_images):
    """(N, H, W, C) float64 real - reconstruction, each patch and channel's mean removed."""
    real, recon = _float_stack(real_images), _float_stack(recon_images)
    if real.shape != recon.shape:
        raise DualgenError(
            f"noise: real patches {real.shape} and reconstructions {recon.shape} differ: the codes folder is from "
            "another VQ-VAE or other patches; rerun the encode step"
        )
    r = real - recon
    return r - r.mean((1, 2), keepdims=True)


def residual_amplitudes(residual):
    """(N, H, W, C) float32 amplitude spectra |FFT2| of each residual patch and channel."""
    return np.abs(np.fft.fft2(np.asarray(residual, np.float64), axes=(1, 2))).astype(np.float32)


def add_residual_noise(images, amplitudes, seed):
    """uint8 images (N, H, W, C) with phase-randomised residual noise added (see the module docstring); image i
    draws its residual and its phases from ``np.random.default_rng([seed, i])``, so a pair's noise does not depend
    on how many pairs are made."""
    im = _float_stack(images)
    amp = np.asarray(amplitudes, np.float64)
    if amp.ndim != 4 or amp.shape[1:] != im.shape[1:]:
        raise DualgenError(
            f"noise: residual spectra {amp.shape[1:]} do not fit images {im.shape[1:]}: the residuals are from "
            "patches of another size or channel count"
        )
    out = np.empty(im.shape, np.uint8)
    for i, image in enumerate(im):
        rng = np.random.default_rng([int(seed), i])
        j = int(rng.integers(len(amp)))
        white = np.fft.fft2(rng.standard_normal(image.shape[:2]))
        phase = white / np.maximum(np.abs(white), 1e-12)
        noise = np.fft.ifft2(amp[j] * phase[..., None], axes=(0, 1)).real
        out[i] = np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)
    return out
