"""VQ-VAE on micrograph + mask stacked as one image (paper step 4): ``model`` (the network), ``data`` (patches to
model input and back, encoding and decoding in batches), ``train`` (the training loop), ``persist`` (spec, save,
load)."""
