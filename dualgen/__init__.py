"""dualgen: synthetic micrograph + mask pairs (VQ-VAE + PixelCNN) and the U-Net study around them."""

from dualgen.core import env as _env

_env.apply()

__version__ = "0.2.0"
