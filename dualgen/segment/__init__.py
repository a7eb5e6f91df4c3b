"""Stage segment (rules/segment.smk): the training mixes, the U-Net (model, data, training), metrics, evaluation."""
