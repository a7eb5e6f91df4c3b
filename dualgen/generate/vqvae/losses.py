"""Training-only terms of the VQ-VAE's loss that keep edges (``train.train_vqvae``; none of them is saved with the
model): the PatchGAN discriminator and its losses (VQGAN, Esser et al. 2021), the perceptual distance of feature
maps (LPIPS-like, without learned weights), and the mask channels' softmax cross-entropy.

- ``PatchDiscriminator``: pix2pix's / VQGAN's PatchGAN in Sonnet: 4x4 convolutions, the first ``num_layers`` with
  stride 2 (the first without normalisation), then one with stride 1, each followed by LeakyReLU(0.2), then a 4x4
  convolution to one logit per patch. GroupNorm instead of BatchNorm (no batch statistics to carry, deterministic).
  Widths: ``filters`` x 1, 2, 4, 8, 8, ... .
- ``hinge_d_loss`` / ``generator_loss``: the hinge loss of the discriminator (VQGAN's, with its factor 1/2) and the
  generator's -mean(D(reconstruction)).
- ``adaptive_weight``: VQGAN's balance of the two: ||grad of the reconstruction loss|| / (||grad of the generator
  loss|| + 1e-4) at the decoder's last layer, clipped to [0, 1e4], no gradient through it.
- ``perceptual_loss``: the mean over feature maps of the squared distance of the unit-normalised feature vectors
  (LPIPS with all its channel weights 1: sum over channels, mean over batch and positions; each map's term is in
  [0, 4]).
- ``mask_xent``: softmax cross-entropy of the mask channels read as logits against the one-hot target.
"""

import math

import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)

ADAPTIVE_EPS = 1e-4  # VQGAN's: the generator gradient's norm is raised by this before dividing
ADAPTIVE_MAX = 1e4  # VQGAN's clip of the adaptive weight
NORMALISE_EPS = 1e-10  # added to a feature vector's squared norm before normalising (LPIPS's epsilon)


class PatchDiscriminator(snt.Module):
    """PatchGAN on (N,H,W,C) float32 images -> (N,H/2^n,W/2^n,1) logits (n = ``num_layers``; one per
    overlapping patch, receptive field 70 px at n = 3), real > 0 > fake."""

    def __init__(self, num_layers=3, filters=32, name=None):
        super().__init__(name=name)
        self._convs = [snt.Conv2D(int(filters), 4, stride=2, name="conv_0")]
        self._norms = [None]
        for i in range(1, int(num_layers) + 1):
            width = int(filters) * min(2**i, 8)
            stride = 2 if i < int(num_layers) else 1
            self._convs.append(snt.Conv2D(width, 4, stride=stride, with_bias=False, name=f"conv_{i}"))
            self._norms.append(snt.GroupNorm(math.gcd(width, 8), name=f"norm_{i}"))
        self._logits = snt.Conv2D(1, 4, name="logits")

    def __call__(self, x):
        h = x
        for conv, norm in zip(self._convs, self._norms):
            h = conv(h)
            if norm is not None:
                h = norm(h)
            h = tf.nn.leaky_relu(h, 0.2)
        return self._logits(h)


def hinge_d_loss(real_logits, fake_logits):
    """The discriminator's hinge loss: (mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))) / 2."""
    return 0.5 * (tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits)))


def generator_loss(fake_logits):
    """The generator's adversarial loss: -mean(D(reconstruction))."""
    return -tf.reduce_mean(fake_logits)


def adaptive_weight(rec_grad, g_grad, scale=1.0):
    """VQGAN's adaptive weight ||rec_grad|| / (||g_grad|| + 1e-4), clipped to [0, 1e4], without gradient.
    ``rec_grad``, ``g_grad``: the gradients of the reconstruction and generator losses at the decoder's last layer;
    ``scale``: the loss scale both were multiplied by (mixed precision; the epsilon is scaled with them). A
    non-finite result (an overflowing float16 gradient) is 0."""
    rec = tf.norm(tf.cast(rec_grad, tf.float32))
    g = tf.norm(tf.cast(g_grad, tf.float32))
    weight = tf.clip_by_value(rec / (g + ADAPTIVE_EPS * scale), 0.0, ADAPTIVE_MAX)
    return tf.stop_gradient(tf.where(tf.math.is_finite(weight), weight, tf.zeros_like(weight)))


def normalise_channels(f):
    """Feature maps (..., C) with each position's channel vector scaled to unit length (a zero vector stays 0)."""
    return f * tf.math.rsqrt(tf.reduce_sum(tf.square(f), axis=-1, keepdims=True) + NORMALISE_EPS)


def perceptual_loss(features, real, fake):
    """Mean over the feature maps of ``features`` (a callable: float32 (N,H,W,C) images in [0, 255] -> list of
    (N,h,w,d) maps) of the batch's mean squared distance of the unit-normalised channel vectors of ``real`` and
    ``fake`` (images in [0, 255]). Differentiable in ``fake`` only; the network's own variables get no update here
    (the caller differentiates with respect to the VQ-VAE's variables)."""
    real_maps = [tf.stop_gradient(tf.cast(f, tf.float32)) for f in features(real)]
    fake_maps = [tf.cast(f, tf.float32) for f in features(fake)]
    if not real_maps or len(real_maps) != len(fake_maps):
        raise ValueError("the perceptual features callable returned no feature maps, or different numbers of them")
    terms = [
        tf.reduce_mean(tf.reduce_sum(tf.square(normalise_channels(a) - normalise_channels(b)), axis=-1))
        for a, b in zip(real_maps, fake_maps)
    ]
    return tf.add_n(terms) / len(terms)


def to_pixels(x):
    """Model-space image channels in [-0.5, 0.5] -> [0, 255] (not clipped: the gradient passes everywhere)."""
    return (x + 0.5) * 255.0


def mask_xent(target, logits):
    """(N,H,W) softmax cross-entropy of mask ``logits`` (N,H,W,K) against one-hot ``target`` (N,H,W,K), the model
    input's one-hot mask (0.5 in the pixel's class, -0.5 elsewhere). Written out (log-softmax) rather than
    TensorFlow's fused op, whose GPU kernel refuses op determinism in the sparse form."""
    labels = tf.cast(target > 0, logits.dtype)
    return -tf.reduce_sum(labels * tf.nn.log_softmax(logits, axis=-1), axis=-1)
