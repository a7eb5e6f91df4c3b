"""The VQ-VAE network, after DeepMind Sonnet's example (sonnet/examples/vqvae_example.ipynb), on micrograph + mask
stacked as one (C+M)-channel image (M: the mask's channels, ``mask_codec.MaskCodec.channels``).

Encoder: two 4x4 stride-2 convolutions (ReLU), a 3x3 convolution (ReLU, as in Sonnet's example), a residual
stack, a 1x1 convolution to the embedding dimension. Quantiser: ``snt.nets.VectorQuantizerEMA`` (codebook updated
by moving averages), ``snt.nets.VectorQuantizer`` (codebook learned by gradient) or ``FSQ`` (finite scalar
quantisation, Mentzer et al. 2023: no codebook; the 1x1 convolution goes to len(fsq_levels) dimensions instead of
the embedding dimension, each bounded and rounded to its levels; K = the product of the levels). Decoder: the
mirror image, ending in two 4x4 stride-2 transposed convolutions, the last one to C+M channels. A 256-px patch
becomes a 64x64 grid of code indices (``downsample`` = 4, the paper's). With ``downsample`` = 2 the second
convolution of the encoder and the first transposed convolution of the decoder keep the size (stride 1; same layers
otherwise): a 64-px patch becomes a 32x32 grid, one code per 2x2 pixels, fine enough for one-pixel boundaries.
"""

import numbers

import numpy as np
import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError
from dualgen.generate.mask_codec import check_encoding

DOWNSAMPLES = (2, 4)  # patch pixels per code cell along each side
QUANTIZERS = ("ema", "vq", "fsq")  # vqvae.quantizer: VectorQuantizerEMA, VectorQuantizer, FSQ
FSQ_EPS = 1e-3  # FSQ's bound stays this share inside the outer levels (the paper's)


def check_patch_size(patch_size, downsample):
    """The encoder shrinks a patch by ``downsample`` and the decoder grows it back: the size must divide by it."""
    if int(patch_size) % int(downsample):
        fit = max(int(downsample), int(patch_size) - int(patch_size) % int(downsample))
        raise DualgenError(
            f"patch size {patch_size} is not divisible by the VQ-VAE's downsampling factor {downsample}: "
            f"use a multiple of {downsample} (e.g. {fit})"
        )


def check_fsq_levels(levels):
    """``vqvae.fsq_levels`` as a list of ints, each at least 2 (one per code dimension); else one DualgenError
    line."""
    ok = (
        isinstance(levels, (list, tuple))
        and len(levels) > 0
        and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and int(n) >= 2 for n in levels)
    )
    if not ok:
        raise DualgenError(
            f"vqvae.fsq_levels is {levels!r}: give a list of integers >= 2, one per code dimension "
            "(e.g. [8, 5, 5, 5]: 1000 codes, [5, 3]: 15), for vqvae.quantizer fsq"
        )
    return [int(n) for n in levels]


def fsq_codes(levels):
    """The codebook size of FSQ with these levels: their product."""
    return int(np.prod(check_fsq_levels(levels), dtype=np.int64))


class FSQ(snt.Module):
    """Finite scalar quantisation (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple"), with the
    output of ``snt.nets.VectorQuantizerEMA`` so that ``VQVAE`` uses either the same way.

    Each of the d = len(``levels``) input dimensions is bounded to its L levels (``bound``: tanh, scaled to
    (L - 1) (1 - eps) / 2; an even L is shifted by a half so that its L levels are -L/2 .. L/2 - 1, as in the paper's
    code, tan(offset / half width) inside the tanh included), rounded with a straight-through gradient and divided by
    L // 2 (codes in [-1, 1]). A code's index is its digits (level 0 .. L - 1 of each dimension) in mixed radix,
    the first dimension the fastest: int32 in [0, prod(levels)). ``quantize(indices)`` gives the codes back. No
    codebook and no variables: ``loss`` is 0; ``perplexity`` as Sonnet's (exp of the entropy of the batch's code
    frequencies)."""

    def __init__(self, levels, name=None):
        super().__init__(name=name)
        self.levels = check_fsq_levels(levels)
        self.num_embeddings = fsq_codes(self.levels)
        n = np.array(self.levels, np.float64)
        half_l = (n - 1) * (1 - FSQ_EPS) / 2
        offset = np.where(n % 2 == 1, 0.0, 0.5)
        self._half_l = tf.constant(half_l, tf.float32)
        self._offset = tf.constant(offset, tf.float32)
        self._shift = tf.constant(np.tan(offset / half_l), tf.float32)  # the paper's code (atanh fails at L = 2)
        self._half_width = tf.constant(np.floor(n / 2), tf.float32)
        self._levels = tf.constant(self.levels, tf.int32)
        self._basis = tf.constant(np.concatenate([[1], np.cumprod(self.levels[:-1])]), tf.int32)

    def bound(self, z):
        """(..., d) -> (..., d) within each dimension's levels (-L/2 .. L/2 - 1 for even L, -(L-1)/2 .. (L-1)/2
        for odd L, not yet rounded)."""
        return tf.tanh(z + self._shift) * self._half_l - self._offset

    def codes_to_indices(self, codes):
        """Codes (..., d) in [-1, 1] (``quantize``'s) -> int32 indices (...)."""
        digits = tf.cast(tf.round(codes * self._half_width + self._half_width), tf.int32)
        return tf.reduce_sum(digits * self._basis, axis=-1)

    def quantize(self, indices):
        """int indices (...) -> float32 codes (..., d) in [-1, 1] (the decoder's input)."""
        digits = (tf.cast(indices, tf.int32)[..., None] // self._basis) % self._levels
        return (tf.cast(digits, tf.float32) - self._half_width) / self._half_width

    def __call__(self, inputs, is_training=False):
        """float32 (..., d) -> dict: ``quantize`` (the codes, straight-through gradient to ``inputs``), ``loss``
        (0), ``perplexity``, ``encoding_indices`` (int32 (...)). ``is_training``: unused (nothing to update)."""
        bounded = self.bound(tf.cast(inputs, tf.float32))
        rounded = bounded + tf.stop_gradient(tf.round(bounded) - bounded)
        codes = rounded / self._half_width
        indices = self.codes_to_indices(tf.stop_gradient(codes))
        frequencies = tf.reduce_mean(tf.one_hot(tf.reshape(indices, [-1]), self.num_embeddings), axis=0)
        perplexity = tf.exp(-tf.reduce_sum(frequencies * tf.math.log(frequencies + 1e-10)))
        return {
            "quantize": codes,
            "loss": tf.constant(0.0, tf.float32),
            "perplexity": perplexity,
            "encoding_indices": indices,
        }


class ResidualStack(snt.Module):
    """num_residual_layers x (ReLU, 3x3 conv, ReLU, 1x1 conv) added to the input, then a ReLU."""

    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, name=None):
        super().__init__(name=name)
        self._layers = [
            (snt.Conv2D(num_residual_hiddens, 3, name=f"res3x3_{i}"), snt.Conv2D(num_hiddens, 1, name=f"res1x1_{i}"))
            for i in range(num_residual_layers)
        ]

    def __call__(self, h):
        for conv3, conv1 in self._layers:
            h = h + conv1(tf.nn.relu(conv3(tf.nn.relu(h))))
        return tf.nn.relu(h)


class Encoder(snt.Module):
    """Sonnet's example encoder: conv 4x4 /2, ReLU, conv 4x4 /2 (/1 at downsample 2), ReLU, conv 3x3, ReLU,
    residual stack."""

    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, downsample, name=None):
        super().__init__(name=name)
        self._enc_1 = snt.Conv2D(num_hiddens // 2, 4, stride=2, name="enc_1")
        self._enc_2 = snt.Conv2D(num_hiddens, 4, stride=downsample // 2, name="enc_2")
        self._enc_3 = snt.Conv2D(num_hiddens, 3, name="enc_3")
        self._residual = ResidualStack(num_hiddens, num_residual_layers, num_residual_hiddens)

    def __call__(self, x):
        h = tf.nn.relu(self._enc_1(x))
        h = tf.nn.relu(self._enc_2(h))
        h = tf.nn.relu(self._enc_3(h))
        return self._residual(h)


class Decoder(snt.Module):
    """The encoder's mirror image: conv 3x3, residual stack, transposed conv 4x4 x2 (x1 at downsample 2), ReLU,
    transposed conv 4x4 x2 to ``out_channels``."""

    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, out_channels, downsample, name=None):
        super().__init__(name=name)
        self._dec_1 = snt.Conv2D(num_hiddens, 3, name="dec_1")
        self._residual = ResidualStack(num_hiddens, num_residual_layers, num_residual_hiddens)
        self._dec_2 = snt.Conv2DTranspose(num_hiddens // 2, 4, stride=downsample // 2, name="dec_2")
        self._dec_3 = snt.Conv2DTranspose(out_channels, 4, stride=2, name="dec_3")

    def __call__(self, z):
        h = self._residual(self._dec_1(z))
        return self._dec_3(tf.nn.relu(self._dec_2(h)))

    @property
    def last_weights(self):
        """The kernel of the last layer (the adversarial term's adaptive weight compares gradients there)."""
        return self._dec_3.w


class VQVAE(snt.Module):
    """``channels`` is the model's channel count: the micrograph's C plus the mask's (``MaskCodec.channels``: 1 for
    the ``level`` encoding, so 4 for RGB; one per class for ``onehot``). ``spec`` keeps the constructor's arguments
    (``persist.SPEC_KEYS``; ``fsq_levels`` only with quantizer fsq).

    ``quantizer`` fsq: ``fsq_levels`` (``check_fsq_levels``) replace the codebook; ``num_embeddings`` must be their
    product or None (then the spec holds the product); ``embedding_dim``, ``commitment_cost`` and ``decay`` are
    kept in the spec but unused. The encoder's output passes a LayerNorm (learned scale and offset) before the 1x1
    convolution to len(fsq_levels) dimensions. With ema or vq ``fsq_levels`` is ignored."""

    def __init__(
        self,
        channels,
        num_hiddens,
        num_residual_hiddens,
        num_residual_layers,
        embedding_dim,
        num_embeddings,
        commitment_cost,
        decay,
        quantizer,
        downsample,
        mask_encoding,
        fsq_levels,
        name=None,
    ):
        super().__init__(name=name)
        if quantizer not in QUANTIZERS:
            raise DualgenError(
                f"vqvae.quantizer is {quantizer!r}: use 'ema' (VectorQuantizerEMA), 'vq' (VectorQuantizer) or "
                "'fsq' (finite scalar quantisation, with vqvae.fsq_levels)"
            )
        if quantizer == "fsq":
            fsq_levels = check_fsq_levels(fsq_levels)
            codes = fsq_codes(fsq_levels)
            if num_embeddings is not None and int(num_embeddings) != codes:
                raise DualgenError(
                    f"vqvae.num_embeddings is {num_embeddings} but vqvae.fsq_levels {fsq_levels} make {codes} codes: "
                    f"set num_embeddings to {codes} (or null) with quantizer fsq"
                )
            num_embeddings = codes
        if downsample not in DOWNSAMPLES:
            raise DualgenError(
                f"vqvae.downsample is {downsample!r}: use one of {', '.join(map(str, DOWNSAMPLES))} "
                "(patch pixels per code cell along each side)"
            )
        check_encoding(mask_encoding)
        self.channels = int(channels)
        self.downsample = int(downsample)
        self.mask_encoding = mask_encoding
        self.spec = {
            "channels": self.channels,
            "num_hiddens": num_hiddens,
            "num_residual_hiddens": num_residual_hiddens,
            "num_residual_layers": num_residual_layers,
            "embedding_dim": embedding_dim,
            "num_embeddings": num_embeddings,
            "commitment_cost": commitment_cost,
            "decay": decay,
            "quantizer": quantizer,
            "downsample": self.downsample,
            "mask_encoding": mask_encoding,
        }
        if quantizer == "fsq":
            self.spec["fsq_levels"] = fsq_levels
        self.num_embeddings = int(num_embeddings)
        self.encoder = Encoder(num_hiddens, num_residual_layers, num_residual_hiddens, self.downsample)
        # fsq: LayerNorm over the encoder's channels first (as VQGAN's encoder ends), so that the projection's
        # values spread over the levels from the start; without it a small encoder output rounds to the zero code
        # everywhere, the decoder sees only zeros and its ReLUs pass no gradient (training never starts)
        self.pre_norm = snt.LayerNorm(-1, True, True, name="fsq_norm") if quantizer == "fsq" else None
        self.pre_vq = snt.Conv2D(len(fsq_levels) if quantizer == "fsq" else embedding_dim, 1, name="to_vq")
        if quantizer == "fsq":
            self.vq = FSQ(fsq_levels)
        elif quantizer == "ema":
            self.vq = snt.nets.VectorQuantizerEMA(embedding_dim, num_embeddings, commitment_cost, decay)
        else:
            self.vq = snt.nets.VectorQuantizer(embedding_dim, num_embeddings, commitment_cost)
        self.decoder = Decoder(num_hiddens, num_residual_layers, num_residual_hiddens, self.channels, self.downsample)

    def _to_vq(self, x):
        """The encoder's output projected to the quantiser's dimensions (LayerNorm first with fsq)."""
        h = self.encoder(x)
        return self.pre_vq(h if self.pre_norm is None else self.pre_norm(h))

    def __call__(self, x, is_training):
        z = self._to_vq(x)  # float16 under mixed precision (train_vqvae), else float32
        vq = self.vq(tf.cast(z, tf.float32), is_training=is_training)  # codebook + its updates: always float32
        x_recon = tf.cast(self.decoder(tf.cast(vq["quantize"], z.dtype)), tf.float32)  # casts: no-ops in float32
        return {
            "x_recon": x_recon,
            "vq_loss": vq["loss"],
            "perplexity": vq["perplexity"],
            "encoding_indices": vq["encoding_indices"],
        }

    def encode(self, x):
        """(N,H,W,C+M) -> int32 (N,H/d,W/d) code indices (d = downsample)."""
        out = self.vq(self._to_vq(x), is_training=False)
        return tf.cast(out["encoding_indices"], tf.int32)

    def decode(self, indices):
        """int code grids (N,h,w) -> float32 (N,d*h,d*w,C+M) (d = downsample)."""
        return self.decoder(self.vq.quantize(tf.cast(indices, tf.int32)))


def build_variables(model, size=16):
    """Create the lazily built variables (Sonnet makes convolution weights on the first call)."""
    model(tf.zeros([1, size, size, model.channels]), is_training=False)


def describe(model):
    """The model's spec as one line (for error messages)."""
    return ", ".join(f"{k}={v}" for k, v in model.spec.items())
