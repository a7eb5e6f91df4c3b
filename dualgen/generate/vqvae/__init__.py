"""VQ-VAE on micrograph + mask stacked as one image (paper step 4): ``model`` (the network, its quantisers: VQ, EMA,
FSQ), ``data`` (patches to model input and back, encoding and decoding in batches), ``train`` (the training loop),
``losses`` (the training-only edge-keeping terms: discriminator, perceptual, mask cross-entropy), ``persist`` (spec,
save, load)."""
