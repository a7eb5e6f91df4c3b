"""PixelCNN prior over VQ-VAE code grids (paper step 6): ``model`` (the network), ``train`` (the training loop and
the validation NLL), ``sample`` (the exact fast sampler and its calibration), ``persist`` (spec, save, load)."""
