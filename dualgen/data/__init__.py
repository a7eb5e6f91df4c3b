"""Stage data (rules/data.smk): reading micrographs, the demo phantom, patches, the base datasets, label noise."""
