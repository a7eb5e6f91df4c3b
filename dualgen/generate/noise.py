"""The decoder's noise: what a VQ-VAE's decoder leaves out of a micrograph, put back (``postprocess.image_noise:
residual``, or the spectrum alone: ``spectrum``).

A decoder trained with a squared error returns the mean of the micrographs its codes stand for: detector noise and
the finest texture average out, so a decoded micrograph has too little power at high spatial frequencies even where
its edges are right (the reconstruction step's image-family ratios show it before any prior samples a code). A VAE
would sample its likelihood instead of taking its mean; this samples a Gaussian likelihood measured on the VQ-VAE's
own training patches (real x, reconstruction y), in three parts:

- ``wiener_gain``: the part of x that y predicts, per spatial frequency: the Wiener filter W(f) = S_xy / S_yy of the
  gray images (the cross- and auto-spectra, each patch's mean removed, 2-D Hann window as in
  ``image_stats.radial_power_spectrum``, averaged over the patches and over rings of |f|, so W depends on |f| only;
  the corners beyond 0.5 cycles/pixel count with the last ring, DC is 1). Where the decoder's output is
  coherent with the real image (low frequencies) W is about 1, or 1 / H(f) where y is x blurred by H(f): the filter
  undoes a blur where it can. Where it is not (the finest scales, whose decoded content is the decoder's own
  guess) W falls towards 0 and the noise takes over. The same W filters every channel.
- ``fit``: the residuals r = x - W * y (each patch and channel's mean removed: a brightness offset is not noise),
  their cross-spectral density S(f), a C x C Hermitian matrix per frequency (the same window, normalised so that
  white noise of variance s^2 gives S = s^2 at every frequency; without the window the jump where a patch wraps
  around adds power at every frequency, and noise drawn from that spectrum had twice the real high-frequency
  power on the demo; anisotropy and the correlation of the channels kept: detector noise may be shared by R, G
  and B or not), its Cholesky factor L(f), and the noise level of each
  class: the standard deviation of r inside the class over that of all of r (noise and texture differ between
  phases; 1 for a class the training masks lack).
- ``add_noise``: image i becomes clip(round(W * image + s[mask] n), 0, 255), n = IFFT(L z) with z the FFT of white
  Gaussian noise per channel (seeded by ``np.random.default_rng([seed, i])``, so a pair's noise does not depend on
  how many pairs are made): a stationary Gaussian field with the residuals' mean spectrum, scaled per pixel by the
  noise level of its class in the synthetic mask.

``postprocess.image_noise: spectrum`` is the deterministic alternative: no noise, only the filter
G(f) = sqrt(S_xx / S_yy) (``power_gain``; same spectra, rings and window), which gives the training reconstructions
the real patches' ring-averaged gray power spectrum (exactly, under the cap), by amplifying (or damping) what the
decoder made at each scale (``equalise``). Where the decoder's fine content is right but too weak (a blur), G
sharpens it; where it is the decoder's own texture (a perceptual decoder), G keeps that texture instead of replacing
it with Gaussian noise, which the Wiener gain would do; at frequencies the decoder overshoots (an upsampling's
checkerboard) G < 1 damps them. It cannot add what the decoder never made: where the reconstructions hold no power
G is 0, and G is capped at ``MAX_GAIN`` = 4 (16x the power): a decoder's content that much weaker than the real one
at some scale is mostly the 8-bit rounding noise of its output, which a larger gain turns into a texture of its own
(grains blurred by a Gaussian of 1.5 px need gains up to 100 at the finest scales; uncapped, the spectrum reads real
and the gradient ratio triples; capped, both improve a little). Where the decoder's loss is milder (the demo's
default VQ-VAE: G at most 2) the cap does not act.

The filter and the noise add no object and move no boundary; they restore the power the decoder averaged away, at
the level measured on the training data, so the power spectrum of the result matches the real one (W y and the
noise are uncorrelated and their powers add up to S_xx). They cannot add structure the decoder never made: a grain
boundary that no code holds stays absent.
"""

from dataclasses import dataclass

import numpy as np

from dualgen.core.errors import DualgenError
from dualgen.generate import image_stats

MAX_GAIN = 4.0  # the most ``power_gain`` amplifies a frequency (16x its power): see the module docstring


def _float_stack(images):
    im = np.asarray(images)
    if im.ndim == 3:
        im = im[..., None]
    if im.ndim != 4 or not len(im):
        raise DualgenError(f"noise: images of shape {im.shape}: expected a non-empty (N, H, W, C) stack")
    return im.astype(np.float64)


def _window(h, w):
    """The Hann window of ``image_stats`` and the factor that makes windowed power that of the whole patch."""
    window = image_stats.hann_window(h, w)
    return window, 1.0 / np.sqrt((window**2).mean())


def _ring_field(h, w):
    """The ring index k = round(|f| L) of each FFT frequency, L = min(H, W) (DC: 0); the corners beyond 0.5
    cycles/pixel count with the last ring, L // 2."""
    size = min(h, w)
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    return np.minimum(np.rint(f * size).astype(np.int64), size // 2)


def _ring_spectra(real_images, recon_images):
    """(S_xx, S_xy, S_yy) per ring (index 0: DC) of the gray real and reconstructed patches, and a floor under which
    a reconstruction's power counts as none."""
    real, recon = _float_stack(real_images), _float_stack(recon_images)
    if real.shape != recon.shape:
        raise DualgenError(
            f"noise: real patches {real.shape} and reconstructions {recon.shape} differ: the codes folder is from "
            "another VQ-VAE or other patches; rerun the encode step"
        )
    h, w = real.shape[1:3]
    window, _ = _window(h, w)
    ring = _ring_field(h, w).ravel()

    def spectrum(images):
        g = image_stats.gray(images)
        g = g - g.mean((1, 2), keepdims=True)
        return np.fft.fft2(g * window).reshape(len(g), -1)

    x, y = spectrum(real), spectrum(recon)
    counts = np.bincount(ring)
    s_xy = np.bincount(ring, weights=(x * np.conj(y)).real.mean(0)) / counts
    s_yy = np.bincount(ring, weights=(np.abs(y) ** 2).mean(0)) / counts
    s_xx = np.bincount(ring, weights=(np.abs(x) ** 2).mean(0)) / counts
    floor = 1e-12 * max(float(s_xx.max()), float(s_yy.max()), np.finfo(float).tiny)  # a flat reconstruction
    return s_xx, s_xy, s_yy, floor


def wiener_gain(real_images, recon_images):
    """(L // 2 + 1,) W(|f|) = S_xy / S_yy per ring (index 0: DC, 1), from the gray real and reconstructed patches."""
    _, s_xy, s_yy, floor = _ring_spectra(real_images, recon_images)
    gain = np.where(s_yy > floor, s_xy / np.maximum(s_yy, floor), 0.0)
    gain[0] = 1.0
    return gain


def power_gain(real_images, recon_images):
    """(L // 2 + 1,) G(|f|) = min(sqrt(S_xx / S_yy), MAX_GAIN) per ring (index 0: DC, 1; 0 where the reconstructions
    hold no power): the filter that gives the reconstructions the real patches' power spectrum
    (``postprocess.image_noise: spectrum``, see the module docstring)."""
    s_xx, _, s_yy, floor = _ring_spectra(real_images, recon_images)
    gain = np.where(s_yy > floor, np.minimum(np.sqrt(s_xx / np.maximum(s_yy, floor)), MAX_GAIN), 0.0)
    gain[0] = 1.0
    return gain


def apply_gain(images, gain):
    """(N, H, W, C) float64 images filtered by the ring gain (each image's mean kept)."""
    im = _float_stack(images)
    h, w = im.shape[1:3]
    gain = np.asarray(gain, np.float64)
    if len(gain) != min(h, w) // 2 + 1:
        raise DualgenError(f"noise: a gain of {len(gain)} rings does not fit {h} x {w} px images")
    field = gain[_ring_field(h, w)][None, :, :, None]
    mean = im.mean((1, 2), keepdims=True)
    return np.fft.ifft2(np.fft.fft2(im - mean, axes=(1, 2)) * field, axes=(1, 2)).real + mean


def equalise(images, gain):
    """uint8 images (N, H, W, C) filtered by the ring gain (``power_gain``), rounded and clipped to 0..255."""
    return np.clip(np.rint(apply_gain(images, gain)), 0, 255).astype(np.uint8)


def gain_summary(gain, name):
    """What meta.json records of a ring gain: its value at 1/8 and 1/4 cycles/pixel."""
    n = len(gain) - 1  # ring k is k / (2 n) cycles/pixel
    return {f"{name}_at_0.125": float(gain[max(1, round(n / 4))]), f"{name}_at_0.25": float(gain[max(1, round(n / 2))])}


@dataclass
class DecoderNoise:
    """The fitted likelihood: the Wiener ring gain, the Cholesky factor of the residuals' cross-spectral density
    (H, W, C, C) and the noise level of each class."""

    gain: np.ndarray
    chol: np.ndarray
    class_scale: np.ndarray

    def summary(self):
        """What meta.json records: the gain at 1/8 and 1/4 cycles/pixel, the noise's standard deviation (gray
        levels, per channel, before the class scaling: the trace of S averaged over the frequencies) and the noise
        level of each class."""
        h, w, c = self.chol.shape[:3]
        return {
            **gain_summary(self.gain, "wiener_gain"),
            "noise_sd": float(np.sqrt((np.abs(self.chol) ** 2).sum() / (h * w * c))),
            "class_scale": [round(float(v), 4) for v in self.class_scale],
        }


def fit(real_images, recon_images, real_masks, n_classes):
    """The decoder's likelihood (see the module docstring) from the VQ-VAE's training patches, their
    reconstructions and their masks (N, H, W) of class ids < ``n_classes``."""
    gain = wiener_gain(real_images, recon_images)
    real = _float_stack(real_images)
    masks = np.asarray(real_masks)
    if masks.shape != real.shape[:3]:
        raise DualgenError(f"noise: masks {masks.shape} do not fit the patches {real.shape}")
    r = real - apply_gain(recon_images, gain)
    r -= r.mean((1, 2), keepdims=True)
    h, w, c = r.shape[1:]
    window, norm = _window(h, w)
    spec = np.fft.fft2(r * window[None, :, :, None], axes=(1, 2)) * norm
    csd = np.einsum("nhwc,nhwd->hwcd", spec, np.conj(spec)) / (len(r) * h * w)
    jitter = 1e-9 * max(float(np.abs(csd).max()), 1.0) * np.eye(c)
    chol = np.linalg.cholesky(csd + jitter)
    overall = r.std()
    scale = np.ones(n_classes)
    for k in range(n_classes):
        inside = masks == k
        if inside.any() and overall > 0:
            scale[k] = r[inside].std() / overall
    return DecoderNoise(gain, chol, scale)


def add_noise(images, masks, model, seed):
    """uint8 images (N, H, W, C): each filtered by the model's gain plus its Gaussian noise, scaled by the noise
    level of each pixel's class in ``masks`` (N, H, W); see the module docstring."""
    im = _float_stack(images)
    masks = np.asarray(masks)
    if model.chol.shape[:3] != im.shape[1:] or masks.shape != im.shape[:3]:
        raise DualgenError(
            f"noise: the fitted noise {model.chol.shape[:3]} does not fit images {im.shape[1:]} with masks "
            f"{masks.shape}: the residuals are from patches of another size or channel count"
        )
    if masks.max(initial=0) >= len(model.class_scale):
        raise DualgenError(f"noise: a mask holds class {int(masks.max())}, the fit knows {len(model.class_scale)}")
    filtered = apply_gain(im, model.gain)
    out = np.empty(im.shape, np.uint8)
    for i in range(len(im)):
        rng = np.random.default_rng([int(seed), i])
        z = np.fft.fft2(rng.standard_normal(im.shape[1:]), axes=(0, 1))
        n = np.fft.ifft2(np.einsum("hwcd,hwd->hwc", model.chol, z), axes=(0, 1)).real
        out[i] = np.clip(np.rint(filtered[i] + model.class_scale[masks[i]][..., None] * n), 0, 255)
    return out


def restore(mode, real_images, recon_images, real_masks, n_classes, images, masks, seed):
    """(uint8 images, summary for meta.json): ``images`` (decoded micrographs, with their cleaned ``masks``) with the
    decoder's noise (``mode`` residual: ``fit`` on the training patches, their reconstructions and masks,
    ``add_noise`` seeded by ``seed``) or its spectrum (``mode`` spectrum: ``power_gain``, ``equalise``) put back."""
    if mode == "spectrum":
        gain = power_gain(real_images, recon_images)
        return equalise(images, gain), dict(gain_summary(gain, "power_gain"), mode=mode)
    if mode != "residual":
        raise DualgenError(f"noise: image_noise {mode!r} is none of residual, spectrum")
    model = fit(real_images, recon_images, real_masks, n_classes)
    return add_noise(images, masks, model, seed), dict(model.summary(), mode=mode)
