"""The VQ-VAE network, after DeepMind Sonnet's example (sonnet/examples/vqvae_example.ipynb), on micrograph + mask
stacked as one (C+M)-channel image (M: the mask's channels, ``mask_codec.MaskCodec.channels``).

Encoder: two 4x4 stride-2 convolutions (ReLU), a 3x3 convolution (ReLU, as in Sonnet's example), a residual
stack, a 1x1 convolution to the embedding dimension. Quantiser: ``snt.nets.VectorQuantizerEMA`` (codebook updated
by moving averages) or ``snt.nets.VectorQuantizer`` (codebook learned by gradient). Decoder: the mirror image,
ending in two 4x4 stride-2 transposed convolutions, the last one to C+M channels. A 256-px patch becomes a 64x64
grid of code indices (``downsample`` = 4, the paper's). With ``downsample`` = 2 the second convolution of the
encoder and the first transposed convolution of the decoder keep the size (stride 1; same layers otherwise): a
64-px patch becomes a 32x32 grid, one code per 2x2 pixels, fine enough for one-pixel boundaries.
"""

import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError
from dualgen.generate.mask_codec import check_encoding

DOWNSAMPLES = (2, 4)  # patch pixels per code cell along each side


def check_patch_size(patch_size, downsample):
    """The encoder shrinks a patch by ``downsample`` and the decoder grows it back: the size must divide by it."""
    if int(patch_size) % int(downsample):
        fit = max(int(downsample), int(patch_size) - int(patch_size) % int(downsample))
        raise DualgenError(
            f"patch size {patch_size} is not divisible by the VQ-VAE's downsampling factor {downsample}: "
            f"use a multiple of {downsample} (e.g. {fit})"
        )


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


class VQVAE(snt.Module):
    """``channels`` is the model's channel count: the micrograph's C plus the mask's (``MaskCodec.channels``: 1 for
    the ``level`` encoding, so 4 for RGB; one per class for ``onehot``). ``spec`` keeps the constructor's arguments
    (``persist.SPEC_KEYS``)."""

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
        name=None,
    ):
        super().__init__(name=name)
        if quantizer not in ("ema", "vq"):
            raise DualgenError(
                f"vqvae.quantizer is {quantizer!r}: use 'ema' (VectorQuantizerEMA) or 'vq' (VectorQuantizer)"
            )
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
        self.encoder = Encoder(num_hiddens, num_residual_layers, num_residual_hiddens, self.downsample)
        self.pre_vq = snt.Conv2D(embedding_dim, 1, name="to_vq")
        if quantizer == "ema":
            self.vq = snt.nets.VectorQuantizerEMA(embedding_dim, num_embeddings, commitment_cost, decay)
        else:
            self.vq = snt.nets.VectorQuantizer(embedding_dim, num_embeddings, commitment_cost)
        self.decoder = Decoder(num_hiddens, num_residual_layers, num_residual_hiddens, self.channels, self.downsample)

    def __call__(self, x, is_training):
        z = self.pre_vq(self.encoder(x))  # float16 under mixed precision (train_vqvae), else float32
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
        out = self.vq(self.pre_vq(self.encoder(x)), is_training=False)
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
