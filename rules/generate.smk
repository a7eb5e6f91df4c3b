# Generation stage (paper steps 4-7): VQ-VAE on image+mask -> code grids -> PixelCNN prior -> sampled grids
# -> decoded image + raw mask -> cleaned masks. Their figures: rules/figures.smk.


rule train_vqvae:
    input:
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(directory(f"{OUT}/vqvae"), patterns=["{name}.png"], caption="../report/vqvae.rst", category="2 Generator"),
    params:
        run=script("train_vqvae"),
        work=lambda wildcards, output: work_dir(output[0]),
        settings=as_json(vqvae=config["vqvae"], classes=CLASSES),
    threads: 4
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_vqvae.log",
    benchmark:
        f"{BENCH}/train_vqvae.tsv"
    conda:
        ENV
    shell:
        "{params.run} --patches {input.patches} --datasets {input.datasets} --work {params.work} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule encode:
    input:
        vqvae=rules.train_vqvae.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(directory(f"{OUT}/codes"), patterns=["{name}.png"], caption="../report/usage.rst", category="2 Generator"),
    params:
        run=script("encode"),
        settings=as_json(classes=CLASSES, postprocess=postprocess_settings()),
    threads: 4
    log:
        f"{LOGS}/encode.log",
    benchmark:
        f"{BENCH}/encode.tsv"
    conda:
        ENV
    shell:
        "{params.run} --vqvae {input.vqvae} --patches {input.patches} --datasets {input.datasets} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule train_pixelcnn:
    input:
        codes=rules.encode.output[0],
    output:
        report(
            directory(f"{OUT}/pixelcnn/{{kind}}"),
            patterns=["{name}.png"],
            caption="../report/pixelcnn.rst",
            category="2 Generator",
            subcategory="PixelCNN {kind}",
        ),
    wildcard_constraints:
        kind="plain|gated",
    params:
        run=script("train_pixelcnn"),
        settings=as_json(pixelcnn=pixelcnn_settings()),
    threads: 4
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_pixelcnn_{{kind}}.log",
    benchmark:
        f"{BENCH}/train_pixelcnn_{{kind}}.tsv"
    conda:
        ENV
    shell:
        "{params.run} --codes {input.codes} --kind {wildcards.kind} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule sample:
    input:
        pixelcnn=f"{OUT}/pixelcnn/{config['pixelcnn']['kind']}",
    output:
        directory(f"{OUT}/synthetic/codes"),
    params:
        run=script("sample"),
        n=POOL_SIZE,
        settings=as_json(sample=config["sample"]),
    threads: 4
    log:
        f"{LOGS}/sample.log",
    benchmark:
        f"{BENCH}/sample.tsv"
    conda:
        ENV
    shell:
        "{params.run} --pixelcnn {input.pixelcnn} --n {params.n} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule decode:
    input:
        vqvae=rules.train_vqvae.output[0],
        codes=rules.sample.output[0],
    output:
        directory(f"{OUT}/synthetic/raw"),
    params:
        run=script("decode"),
        settings=as_json(classes=CLASSES),
    threads: 4
    log:
        f"{LOGS}/decode.log",
    benchmark:
        f"{BENCH}/decode.tsv"
    conda:
        ENV
    shell:
        "{params.run} --vqvae {input.vqvae} --codes {input.codes} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule postprocess:
    input:
        raw=rules.decode.output[0],
    output:
        directory(f"{OUT}/synthetic/clean"),
    params:
        run=script("postprocess"),
        settings=as_json(classes=CLASSES, postprocess=postprocess_settings()),
    log:
        f"{LOGS}/postprocess.log",
    benchmark:
        f"{BENCH}/postprocess.tsv"
    conda:
        ENV
    shell:
        "{params.run} --raw {input.raw} --out {output} --settings {params.settings:q} --log {log}"
