# Segmentation study (paper steps 8-12): one training mix per mix; with unet.updates: auto, calibration trainings of
# each base's 0 % mix and the one budget they give (budget/budget.json); one U-Net per (mix, seed), which also
# segments the test set (a job trains a chunk of a mix's seeds: unet.seeds_per_job); a numpy-only evaluation
# per (mix, seed); every mix's seeds and their ensemble on the whole test micrographs at their original resolution
# (test_micrographs, whole_image); the quality pre-test of the synthetic pairs; the study's tables (per image, per
# mix with intervals, paired comparisons, whole micrographs). Figures: rules/report.smk.


include: "segment_helpers.smk"


rule build_mix:
    input:
        datasets=rules.datasets.output[0],
        pool=pool_input,
        patches=lambda wildcards: [rules.patches.output[0]] if MIX[wildcards.mix].real_only else [],
    output:
        directory(f"{OUT}/mixes/{{mix}}"),
    log:
        f"{LOGS}/build_mix/{{mix}}.log",
    benchmark:
        f"{BENCH}/build_mix/{{mix}}.tsv"
    wildcard_constraints:
        mix=MIX_PATTERN,
    conda:
        ENV
    params:
        run=script("build_mix"),
        # the pool, or the patches (their HQ masks) for the real-only curve: one param, so the command of the other
        # mixes stays as it was (a changed command reruns a finished study's mixes)
        pool=lambda wildcards, input: (
            f"--pool {input.pool}" if input.pool else f"--patches {input.patches}" if input.patches else ""
        ),
        settings=lambda wildcards: mix_settings(wildcards.mix),
    shell:
        "{params.run} --datasets {input.datasets} {params.pool} --out {output} "
        "--settings {params.settings:q} --log {log}"


rule train_unet:
    input:
        mix=f"{OUT}/mixes/{{mix}}",
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
        pool=pool_input,
        budget=budget_input,
    output:
        directory(f"{OUT}/unet/{{mix}}/seeds{{chunk}}"),
    log:
        f"{LOGS}/train_unet/{{mix}}/seeds{{chunk}}.log",
    benchmark:
        f"{BENCH}/train_unet/{{mix}}/seeds{{chunk}}.tsv"
    wildcard_constraints:
        mix=MIX_PATTERN,
        chunk=r"\d+(_\d+)*",
    priority: lambda wildcards: MIX[wildcards.mix].n_real + MIX[wildcards.mix].n_synth  # long trainings first
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
        checkpoint_every_s=str(config["unet"]["checkpoint_every_s"]),  # not a param: changing it reruns nothing
    params:
        run=script("train_unet"),
        work=lambda wildcards, output: work_dir(output[0]),
        pool=lambda wildcards, input: f"--pool {input.pool}" if input.pool else "",
        settings=lambda wildcards: unet_settings(wildcards.mix, wildcards.chunk),
        budget=lambda wildcards, input: f"--budget {input.budget}" if input.budget else "",
    shell:
        "{params.run} --mix {input.mix} --patches {input.patches} --datasets {input.datasets} {params.pool} "
        "--work {params.work} --out {output} --threads {threads} --settings {params.settings:q} --log {log} "
        "--checkpoint-every-s {resources.checkpoint_every_s} {params.budget}"


rule calibrate_budget:
    input:
        mix=f"{OUT}/mixes/{{base}}_000",
        patches=rules.patches.output[0],
    output:
        directory(f"{OUT}/calibration/{{base}}"),
    log:
        f"{LOGS}/calibrate_budget/{{base}}.log",
    benchmark:
        f"{BENCH}/calibrate_budget/{{base}}.tsv"
    wildcard_constraints:
        base="|".join(CALIBRATION_BASES) or "NO_BASE",
    priority: 100  # every training waits for the budget
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
        checkpoint_every_s=str(config["unet"]["checkpoint_every_s"]),
    params:
        run=script("calibrate_budget"),
        work=lambda wildcards, output: work_dir(output[0]),
        settings=lambda wildcards: calibration_settings(wildcards.base),
    shell:
        "{params.run} --mix {input.mix} --patches {input.patches} --work {params.work} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log} "
        "--checkpoint-every-s {resources.checkpoint_every_s}"


rule choose_budget:
    input:
        calibrations=expand(f"{OUT}/calibration/{{base}}", base=CALIBRATION_BASES),
    output:
        directory(BUDGET),
    log:
        f"{LOGS}/choose_budget.log",
    benchmark:
        f"{BENCH}/choose_budget.tsv"
    conda:
        ENV
    params:
        run=script("choose_budget"),
        settings=budget_settings(),
    shell:
        "{params.run} --calibrations {input.calibrations} --out {output} --settings {params.settings:q} --log {log}"


rule evaluate:
    input:
        unet=lambda wildcards: unet_chunk(wildcards.mix, wildcards.seed),
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{OUT}/metrics/{{mix}}/seed{{seed}}"),
    log:
        f"{LOGS}/evaluate/{{mix}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{mix}}/seed{{seed}}.tsv"
    wildcard_constraints:
        mix=MIX_PATTERN,
        seed=r"\d+",
    conda:
        ENV
    params:
        run=script("evaluate"),
        unet=lambda wildcards: unet_run(wildcards.mix, wildcards.seed),
        settings=as_json(classes=CLASSES),
    shell:
        "{params.run} --name {wildcards.mix} --seed {wildcards.seed} --unet {params.unet} --patches {input.patches} "
        "--datasets {input.datasets} --out {output} --settings {params.settings:q} --log {log}"


rule test_micrographs:
    input:
        data_inputs(),
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{OUT}/whole/test"),
    log:
        f"{LOGS}/test_micrographs.log",
    benchmark:
        f"{BENCH}/test_micrographs.tsv"
    conda:
        ENV
    params:
        run=script("test_micrographs"),
        settings=as_json(data=patches_data_settings(data_settings(), demo_dir()), classes=CLASSES),
    shell:
        "{params.run} --patches {input.patches} --datasets {input.datasets} --out {output} "
        "--settings {params.settings:q} --log {log}"


rule whole_image:
    input:
        unet=lambda wildcards: mix_chunks(wildcards.mix),
        test=rules.test_micrographs.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{OUT}/whole/{{mix}}"),
    log:
        f"{LOGS}/whole_image/{{mix}}.log",
    benchmark:
        f"{BENCH}/whole_image/{{mix}}.tsv"
    wildcard_constraints:
        mix=MIX_PATTERN,
    conda:
        ENV
    threads: 1
    params:
        run=script("whole_image"),
        settings=as_json(classes=CLASSES, whole_image=config["whole_image"], determinism=config["determinism"]),
    shell:
        "{params.run} --name {wildcards.mix} --unet {input.unet} --test {input.test} --patches {input.patches} "
        "--datasets {input.datasets} --out {output} --threads {threads} --settings {params.settings:q} --log {log}"


rule pretest:
    input:
        unet=unet_chunk(PRETEST_MIX, SEEDS[0]),
        pool=f"{OUT}/synthetic/clean",
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{OUT}/pretest"),
    log:
        f"{LOGS}/pretest.log",
    benchmark:
        f"{BENCH}/pretest.tsv"
    conda:
        ENV
    threads: 1
    params:
        run=script("pretest"),
        unet=unet_run(PRETEST_MIX, SEEDS[0]),
        model=f"{PRETEST_MIX} (seed {SEEDS[0]})",
        settings=as_json(classes=CLASSES, determinism=config["determinism"]),
    shell:
        "{params.run} --unet {params.unet} --model-name {params.model:q} --pool {input.pool} "
        "--patches {input.patches} --datasets {input.datasets} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule aggregate:
    input:
        metrics=expand(f"{OUT}/metrics/{{mix}}/seed{{seed}}", mix=[m.name for m in MIXES], seed=SEEDS),
        whole=expand(f"{OUT}/whole/{{mix}}", mix=[m.name for m in MIXES]),
        real=expand(f"{OUT}/mixes/{{mix}}", mix=[m.name for m in MIXES if m.real_only]),
    output:
        report(
            directory(f"{OUT}/study"),
            patterns=["{name}.csv"],
            caption="../report/study_tables.rst",
            category="4 Study",
            subcategory="Tables",
        ),
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCH}/aggregate.tsv"
    conda:
        ENV
    params:
        run=script("aggregate"),
        settings=as_json(classes=CLASSES, mixes=[mixes.fields(m) for m in MIXES], stats=config["stats"]),
    shell:
        "{params.run} --metrics {input.metrics} --whole {input.whole} --real {input.real} --out {output} "
        "--settings {params.settings:q} --log {log}"
