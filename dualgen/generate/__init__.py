"""Stage generate (rules/generate.smk): VQ-VAE, PixelCNN prior, mask cleaning, conditioning, fidelity."""
