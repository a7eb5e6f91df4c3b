# dualgen: synthetic micrograph + mask pairs (VQ-VAE + PixelCNN) and the U-Net study around them.
#   snakemake --cores all                              the default study (demo data, CPU scale)
#   snakemake --cores all --configfile presets/ci.yaml a tiny run (what the tests use)
# See README.md. Config: config.yaml, checked against schemas/config.schema.yaml.
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/generate.smk"
include: "rules/segment.smk"
include: "rules/predict.smk"
include: "rules/report.smk"


# The report's first page: the study's answer (figure_findings writes it) once there is one, else the intro alone.
report: FRONT_PAGE if os.path.exists(FRONT_PAGE) else "report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
