# Figures that draw masks or depend on figure settings (class colours, preview counts, figure pairs, overlay
# choices): one rule per figure, reading what the compute steps saved. A figure setting reruns only these.


include: "report_helpers.smk"


rule figure_datasets:
    input:
        datasets=rules.datasets.output[0],
        patches=rules.patches.output[0],
    output:
        report(
            directory(f"{OUT}/figures/datasets"),
            patterns=["{name}.png"],
            caption="../report/datasets.rst",
            category="1 Data",
        ),
    log:
        f"{LOGS}/figures/datasets.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="datasets",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=config["datasets"]["preview"]),
    shell:
        figure_rule_shell()


rule figure_vqvae:
    input:
        vqvae=rules.train_vqvae.output[0],
    output:
        report(
            directory(f"{OUT}/figures/vqvae"),
            patterns=["{name}.png"],
            caption="../report/vqvae.rst",
            category="2 Generator",
        ),
    log:
        f"{LOGS}/figures/vqvae.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="vqvae",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES),
    shell:
        figure_rule_shell()


rule figure_codes:
    input:
        codes=rules.encode.output[0],
        reconstruction=rules.reconstruction.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(
            directory(f"{OUT}/figures/codes"),
            patterns=["{name}.png"],
            caption="../report/codes.rst",
            category="2 Generator",
        ),
    log:
        f"{LOGS}/figures/codes.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="codes",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=4),
    shell:
        figure_rule_shell()


rule figure_cleaning:
    input:
        clean=rules.postprocess.output[0],
        raw=rules.decode.output[0],
    output:
        report(
            directory(f"{OUT}/figures/cleaning"),
            patterns=["{name}.png"],
            caption="../report/postprocess.rst",
            category="3 Synthetic pairs",
        ),
    log:
        f"{LOGS}/figures/cleaning.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="cleaning",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=4),
    shell:
        figure_rule_shell()


rule figure_synthetic:
    input:
        clean=rules.postprocess.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(
            directory(f"{OUT}/figures/synthetic"),
            patterns=["{name}.png"],
            caption="../report/synthetic.rst",
            category="3 Synthetic pairs",
        ),
    log:
        f"{LOGS}/figures/synthetic.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="synthetic",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=config["postprocess"]["figure_pairs"]),
    shell:
        figure_rule_shell()


rule figure_pretest:
    input:
        pretest=rules.pretest.output[0],
        clean=rules.postprocess.output[0],
    output:
        report(
            directory(f"{OUT}/figures/pretest"),
            patterns=["{name}.png"],
            caption="../report/pretest.rst",
            category="3 Synthetic pairs",
        ),
    log:
        f"{LOGS}/figures/pretest.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="pretest",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=4),
    shell:
        figure_rule_shell()


rule figure_study:
    input:
        unpack(study_figure_inputs),
    output:
        report(
            directory(f"{OUT}/figures/study"),
            patterns=["{name}.png"],
            caption="../report/study.rst",
            category="4 Study",
            subcategory="Figures",
        ),
    log:
        f"{LOGS}/figures/study.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="study",
        inputs=figure_inputs,
        settings=as_json(
            classes=FIGURE_CLASSES,
            overlay_mixes=overlay_mixes(),
            overlay_images=config["report"]["overlay_images"],
            curve_mixes=curve_mixes(),
            big_train=config["datasets"]["big_train"],
        ),
    shell:
        figure_rule_shell()


rule figure_whole:
    input:
        unpack(whole_figure_inputs),
    output:
        report(
            directory(f"{OUT}/figures/whole"),
            patterns=["{name}.png"],
            caption="../report/whole.rst",
            category="4 Study",
            subcategory="Whole micrographs",
        ),
    log:
        f"{LOGS}/figures/whole.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="whole",
        inputs=figure_inputs,
        settings=as_json(
            classes=FIGURE_CLASSES,
            overlay_mixes=overlay_mixes(),
            overlay_images=config["report"]["overlay_images"],
            patch_size=config["patches"]["size"],
        ),
    shell:
        figure_rule_shell()


rule figure_lq:
    input:
        patches=rules.patches.output[0],
    output:
        report(directory(f"{OUT}/figures/lq"), patterns=["{name}.png"], caption="../report/lq.rst", category="1 Data"),
    log:
        f"{LOGS}/figures/lq.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="lq",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=4),
    shell:
        figure_rule_shell()


rule figure_fidelity:
    input:
        fidelity=rules.fidelity.output[0],
    output:
        report(
            directory(f"{OUT}/figures/fidelity"),
            patterns=["{name}.png"],
            caption="../report/fidelity.rst",
            category="2 Generator",
            subcategory="Fidelity",
        ),
    log:
        f"{LOGS}/figures/fidelity.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="fidelity",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES),
    shell:
        figure_rule_shell()


rule figure_generator_card:
    input:
        unpack(generator_card_inputs),
    output:
        report(
            directory(f"{OUT}/figures/generator_card"),
            patterns=["{name}.html"],
            caption="../report/generator_card.rst",
            category="2 Generator",
            subcategory="0 Report card",
        ),
    log:
        f"{LOGS}/figures/generator_card.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="generator_card",
        inputs=figure_inputs,
        settings=as_json(),
    shell:
        figure_rule_shell()


rule figure_findings:
    input:
        study=rules.aggregate.output[0],
        intro=os.path.join(workflow.basedir, "report", "workflow.rst"),
    output:
        report(
            directory(f"{OUT}/figures/findings"),
            patterns=["{name}.html"],
            caption="../report/findings.rst",
            category="4 Study",
            subcategory="0 Findings",
        ),
    log:
        f"{LOGS}/figures/findings.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="findings",
        inputs=figure_inputs,
        settings=as_json(classes=CLASSES),
    shell:
        figure_rule_shell()


rule figure_conditioning:
    input:
        conditioning=rules.conditioning.output[0],
        balanced=conditioned_pool("balanced"),
    output:
        report(
            directory(f"{OUT}/figures/conditioning"),
            patterns=["{name}.png"],
            caption="../report/conditioning.rst",
            category="2 Generator",
            subcategory="Conditioning",
        ),
    log:
        f"{LOGS}/figures/conditioning.log",
    conda:
        ENV
    params:
        run=script("figure"),
        kind="conditioning",
        inputs=figure_inputs,
        settings=as_json(classes=FIGURE_CLASSES, n=6),
    shell:
        figure_rule_shell()
