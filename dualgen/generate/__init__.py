"""Stage generate (rules/generate.smk): the mask codec, VQ-VAE and PixelCNN prior (subpackages ``vqvae``,
``pixelcnn``), the sampler's calibration, mask cleaning, conditioning, fidelity; ``common``: glue of its scripts."""
