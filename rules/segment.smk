# Segmentation study (paper steps 8-12): one training mix, one U-Net and one evaluation per mix;
# the quality pre-test of the synthetic pairs; metrics.csv and the paper's figures.


rule build_mix:
    input:
        datasets=rules.datasets.output[0],
        pool=pool_input,
    output:
        directory(f"{OUT}/mixes/{{mix}}"),
    wildcard_constraints:
        mix=MIX_PATTERN,
    params:
        run=script("build_mix"),
        pool=lambda wildcards, input: f"--pool {input.pool}" if input.pool else "",
        settings=as_json(mixes=config["mixes"], datasets=config["datasets"]),
    log:
        f"{LOGS}/build_mix/{{mix}}.log",
    benchmark:
        f"{BENCH}/build_mix/{{mix}}.tsv"
    conda:
        ENV
    shell:
        "{params.run} --mix {wildcards.mix} --datasets {input.datasets} {params.pool} --out {output} "
        "--settings {params.settings:q} --log {log}"


rule train_unet:
    input:
        mix=f"{OUT}/mixes/{{mix}}",
        patches=rules.patches.output[0],
        pool=pool_input,
    output:
        directory(f"{OUT}/unet/{{mix}}"),
    wildcard_constraints:
        mix=MIX_PATTERN,
    params:
        run=script("train_unet"),
        work=lambda wildcards, output: work_dir(output[0]),
        pool=lambda wildcards, input: f"--pool {input.pool}" if input.pool else "",
        settings=lambda wildcards: unet_settings(wildcards.mix),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_unet/{{mix}}.log",
    benchmark:
        f"{BENCH}/train_unet/{{mix}}.tsv"
    conda:
        ENV
    shell:
        "{params.run} --name {wildcards.mix} --mix {input.mix} --patches {input.patches} {params.pool} "
        "--work {params.work} --out {output} --threads {threads} --settings {params.settings:q} --log {log}"


rule evaluate:
    input:
        unet=f"{OUT}/unet/{{mix}}",
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{OUT}/metrics/{{mix}}"),
    wildcard_constraints:
        mix=MIX_PATTERN,
    params:
        run=script("evaluate"),
        settings=as_json(classes=config["classes"]),
    threads: 1
    log:
        f"{LOGS}/evaluate/{{mix}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{mix}}.tsv"
    conda:
        ENV
    shell:
        "{params.run} --name {wildcards.mix} --unet {input.unet} --patches {input.patches} "
        "--datasets {input.datasets} --out {output} --threads {threads} --settings {params.settings:q} --log {log}"


rule pretest:
    input:
        unet=f"{OUT}/unet/{PRETEST_MIX}",
        pool=f"{OUT}/synthetic/clean",
    output:
        report(directory(f"{OUT}/pretest"), patterns=["{name}.png"], caption="../report/pretest.rst", category="3 Synthetic pairs"),
    params:
        run=script("pretest"),
        model=PRETEST_MIX,
        settings=as_json(classes=config["classes"]),
    threads: 1
    log:
        f"{LOGS}/pretest.log",
    benchmark:
        f"{BENCH}/pretest.tsv"
    conda:
        ENV
    shell:
        "{params.run} --unet {input.unet} --model-name {params.model} --pool {input.pool} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule aggregate:
    input:
        metrics=expand(f"{OUT}/metrics/{{mix}}", mix=[m.name for m in MIXES]),
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(directory(f"{OUT}/study"), patterns=["{name}.png"], caption="../report/study.rst", category="4 Study"),
    params:
        run=script("aggregate"),
        metrics=lambda wildcards, input: os.path.dirname(input.metrics[0]),
        settings=as_json(
            classes=config["classes"],
            mixes=config["mixes"],
            datasets=config["datasets"],
            overlay_mixes=config["report"]["overlay_mixes"],
            overlay_images=config["report"]["overlay_images"],
        ),
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCH}/aggregate.tsv"
    conda:
        ENV
    shell:
        "{params.run} --metrics {params.metrics} --patches {input.patches} --datasets {input.datasets} "
        "--out {output} --settings {params.settings:q} --log {log}"
