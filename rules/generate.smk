# Generation stage (paper steps 4-7): VQ-VAE on image+mask -> code grids -> PixelCNN prior -> sampled grids
# -> decoded image + raw mask -> cleaned masks; then the fidelity of the synthetic pairs against real ones, for
# the study's pool and each other generator variant (prior kind x sampling temperature, a few pairs each, made by
# the same scripts as the pool); then the conditioned prior and its pools. Their figures: rules/report.smk.


include: "generate_helpers.smk"


rule train_vqvae:
    input:
        unpack(vqvae_inputs),
    output:
        report(
            directory(f"{OUT}/vqvae"), patterns=["{name}.png"], caption="../report/vqvae.rst", category="2 Generator"
        ),
    log:
        f"{LOGS}/train_vqvae.log",
    benchmark:
        f"{BENCH}/train_vqvae.tsv"
    conda:
        ENV
    threads: 4
    resources:
        gpu=GPU_PER_JOB,
    params:
        run=vqvae_command,
        work=lambda wildcards, output: work_dir(output[0]),
        settings=as_json(vqvae=vqvae_settings(), classes=CLASSES, determinism=config["determinism"]),
    shell:
        "{params.run} --patches {input.patches} --datasets {input.datasets} --work {params.work} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule encode:
    input:
        vqvae=rules.train_vqvae.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(
            directory(f"{OUT}/codes"), patterns=["{name}.png"], caption="../report/usage.rst", category="2 Generator"
        ),
    log:
        f"{LOGS}/encode.log",
    benchmark:
        f"{BENCH}/encode.tsv"
    conda:
        ENV
    threads: 4
    params:
        run=script("encode"),
        settings=as_json(classes=CLASSES, determinism=config["determinism"]),
    shell:
        "{params.run} --vqvae {input.vqvae} --patches {input.patches} --datasets {input.datasets} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule reconstruction:
    input:
        codes=rules.encode.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{OUT}/reconstruction"),
    log:
        f"{LOGS}/reconstruction.log",
    benchmark:
        f"{BENCH}/reconstruction.tsv"
    conda:
        ENV
    params:
        run=script("reconstruction"),
        settings=as_json(
            classes=CLASSES,
            postprocess=postprocess_settings(),
            fidelity={k: config["fidelity"][k] for k in ("n_splits", "seed")},
        ),
    shell:
        "{params.run} --codes {input.codes} --patches {input.patches} --datasets {input.datasets} --out {output} "
        "--settings {params.settings:q} --log {log}"


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
    log:
        f"{LOGS}/train_pixelcnn_{{kind}}.log",
    benchmark:
        f"{BENCH}/train_pixelcnn_{{kind}}.tsv"
    wildcard_constraints:
        kind="plain|gated|maskgit",
    conda:
        ENV
    threads: 4
    resources:
        gpu=GPU_PER_JOB,
    params:
        run=script("train_pixelcnn"),
        settings=lambda wildcards: as_json(
            pixelcnn=pixelcnn_settings(wildcards.kind), determinism=config["determinism"]
        ),
    shell:
        "{params.run} --codes {input.codes} --kind {wildcards.kind} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule sample:
    input:
        pixelcnn=f"{OUT}/pixelcnn/{config['pixelcnn']['kind']}",
        codes=rules.encode.output[0],
        vqvae=rules.train_vqvae.output[0],  # sample.calibrate classes decodes its draws
    output:
        directory(f"{OUT}/synthetic/codes"),
    log:
        f"{LOGS}/sample.log",
    benchmark:
        f"{BENCH}/sample.tsv"
    conda:
        ENV
    threads: 4
    params:
        run=script("sample"),
        n=POOL_SIZE,
        settings=as_json(sample=sample_settings(), determinism=config["determinism"]),
    shell:
        "{params.run} --pixelcnn {input.pixelcnn} --codes {input.codes} --vqvae {input.vqvae} --n {params.n} "
        "--out {output} --threads {threads} --settings {params.settings:q} --log {log}"


rule decode:
    input:
        vqvae=rules.train_vqvae.output[0],
        codes=rules.sample.output[0],
    output:
        directory(f"{OUT}/synthetic/raw"),
    log:
        f"{LOGS}/decode.log",
    benchmark:
        f"{BENCH}/decode.tsv"
    conda:
        ENV
    threads: 4
    params:
        run=script("decode"),
        settings=as_json(classes=CLASSES, determinism=config["determinism"]),
    shell:
        "{params.run} --vqvae {input.vqvae} --codes {input.codes} --out {output} "
        "--threads {threads} --settings {params.settings:q} --log {log}"


rule postprocess:
    input:
        **NOISE_INPUTS,
        raw=rules.decode.output[0],
    output:
        directory(f"{OUT}/synthetic/clean"),
    log:
        f"{LOGS}/postprocess.log",
    benchmark:
        f"{BENCH}/postprocess.tsv"
    conda:
        ENV
    params:
        run=postprocess_command,
        settings=as_json(classes=CLASSES, postprocess=postprocess_settings()),
    shell:
        "{params.run} --raw {input.raw} --out {output} --settings {params.settings:q} --log {log}"


# Generator variants for the fidelity step: the study's pool (pixelcnn.kind at sample.temperature) and each trained
# prior at each of sample.temperatures, named <kind>_t<temperature>; the same three steps as the pool, fidelity.n
# pairs each.
use rule sample as fidelity_sample with:
    input:
        pixelcnn=lambda wildcards: f"{OUT}/pixelcnn/{VARIANTS[wildcards.variant][0]}",
        codes=rules.encode.output[0],
        vqvae=rules.train_vqvae.output[0],
    output:
        directory(f"{VARIANT_DIR}/{{variant}}/codes"),
    log:
        f"{LOGS}/variants/{{variant}}/sample.log",
    benchmark:
        f"{BENCH}/variants/{{variant}}/sample.tsv"
    wildcard_constraints:
        variant=VARIANT_PATTERN,
    params:
        run=script("sample"),
        n=config["fidelity"]["n"],
        settings=lambda wildcards: as_json(
            sample=sample_settings(VARIANTS[wildcards.variant][1]), determinism=config["determinism"]
        ),


use rule decode as fidelity_decode with:
    input:
        vqvae=rules.train_vqvae.output[0],
        codes=f"{VARIANT_DIR}/{{variant}}/codes",
    output:
        directory(f"{VARIANT_DIR}/{{variant}}/raw"),
    log:
        f"{LOGS}/variants/{{variant}}/decode.log",
    benchmark:
        f"{BENCH}/variants/{{variant}}/decode.tsv"
    wildcard_constraints:
        variant=VARIANT_PATTERN,


use rule postprocess as fidelity_postprocess with:
    input:
        **NOISE_INPUTS,
        raw=f"{VARIANT_DIR}/{{variant}}/raw",
    output:
        directory(f"{VARIANT_DIR}/{{variant}}/clean"),
    log:
        f"{LOGS}/variants/{{variant}}/postprocess.log",
    benchmark:
        f"{BENCH}/variants/{{variant}}/postprocess.tsv"
    wildcard_constraints:
        variant=VARIANT_PATTERN,


rule fidelity:
    input:
        unpack(fidelity_inputs),
    output:
        report(
            directory(f"{OUT}/fidelity"),
            patterns=["{name}.csv"],
            caption="../report/fidelity_tables.rst",
            category="2 Generator",
            subcategory="Fidelity",
        ),
    log:
        f"{LOGS}/fidelity.log",
    benchmark:
        f"{BENCH}/fidelity.tsv"
    conda:
        ENV
    threads: 1
    params:
        run=script("fidelity"),
        variants=lambda wildcards, input: " ".join(
            f"--variant {name}={input[f'variant_{name}']}" for name in scored_variants()
        ),
        encoder=fidelity_encoder,
        settings=as_json(
            classes=CLASSES,
            fidelity={k: config["fidelity"][k] for k in ("n_splits", "seed")},
            variants=fidelity_variants(),
            determinism=config["determinism"],
        ),
    shell:
        "{params.run} --patches {input.patches} --datasets {input.datasets} {params.variants} {params.encoder} "
        "--out {output} --threads {threads} --settings {params.settings:q} --log {log}"


# Conditioned generation (pixelcnn.condition): a conditioned prior of each trained kind next to the unconditioned
# one (pixelcnn/<kind>_cond); from the study's kind, two pools (balanced: sample.targets, for the balanced arm;
# data: targets drawn from real patches), each sampled, decoded and cleaned like the study's pool; and whether the
# prior obeyed (requested vs achieved class fractions of the cleaned masks).
rule train_pixelcnn_conditioned:
    input:
        codes=rules.encode.output[0],
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        report(
            directory(f"{OUT}/pixelcnn/{{kind}}_cond"),
            patterns=["{name}.png"],
            caption="../report/pixelcnn.rst",
            category="2 Generator",
            subcategory="PixelCNN {kind} conditioned",
        ),
    log:
        f"{LOGS}/train_pixelcnn_{{kind}}_cond.log",
    benchmark:
        f"{BENCH}/train_pixelcnn_{{kind}}_cond.tsv"
    wildcard_constraints:
        kind="plain|gated|maskgit",
    conda:
        ENV
    threads: 4
    resources:
        gpu=GPU_PER_JOB,
    params:
        run=script("train_pixelcnn"),
        settings=lambda wildcards: as_json(
            pixelcnn=pixelcnn_settings(wildcards.kind, conditioned=True),
            classes=CLASSES,
            determinism=config["determinism"],
        ),
    shell:
        "{params.run} --codes {input.codes} --patches {input.patches} --datasets {input.datasets} "
        "--kind {wildcards.kind} --out {output} --threads {threads} --settings {params.settings:q} --log {log}"


rule sample_conditioned:
    input:
        pixelcnn=f"{OUT}/pixelcnn/{COND_KIND}",
        patches=rules.patches.output[0],
        datasets=rules.datasets.output[0],
    output:
        directory(f"{COND_DIR}/{{target}}/codes"),
    log:
        f"{LOGS}/conditioned/{{target}}/sample.log",
    benchmark:
        f"{BENCH}/conditioned/{{target}}/sample.tsv"
    wildcard_constraints:
        target="balanced|data",
    conda:
        ENV
    threads: 4
    params:
        run=script("sample"),
        n=lambda wildcards: conditioned_pool_size(wildcards.target),
        settings=lambda wildcards: conditioned_sample_settings(wildcards.target),
    shell:
        "{params.run} --pixelcnn {input.pixelcnn} --patches {input.patches} --datasets {input.datasets} "
        "--n {params.n} --out {output} --threads {threads} --settings {params.settings:q} --log {log}"


use rule decode as decode_conditioned with:
    input:
        vqvae=rules.train_vqvae.output[0],
        codes=f"{COND_DIR}/{{target}}/codes",
    output:
        directory(f"{COND_DIR}/{{target}}/raw"),
    log:
        f"{LOGS}/conditioned/{{target}}/decode.log",
    benchmark:
        f"{BENCH}/conditioned/{{target}}/decode.tsv"
    wildcard_constraints:
        target="balanced|data",


use rule postprocess as postprocess_conditioned with:
    input:
        **NOISE_INPUTS,
        raw=f"{COND_DIR}/{{target}}/raw",
    output:
        directory(f"{COND_DIR}/{{target}}/clean"),
    log:
        f"{LOGS}/conditioned/{{target}}/postprocess.log",
    benchmark:
        f"{BENCH}/conditioned/{{target}}/postprocess.tsv"
    wildcard_constraints:
        target="balanced|data",


rule conditioning:
    input:
        unpack(conditioning_inputs),
    output:
        report(
            directory(f"{OUT}/conditioning"),
            patterns=["{name}.csv"],
            caption="../report/conditioning.rst",
            category="2 Generator",
            subcategory="Conditioning",
        ),
    log:
        f"{LOGS}/conditioning.log",
    benchmark:
        f"{BENCH}/conditioning.tsv"
    conda:
        ENV
    params:
        run=script("conditioning"),
        reference=lambda wildcards, input: f"--reference {input.reference}" if "reference" in input.keys() else "",
        settings=as_json(classes=CLASSES),
    shell:
        "{params.run} --balanced-codes {input.balanced_codes} --balanced {input.balanced_clean} "
        "--data-codes {input.data_codes} --data {input.data_clean} {params.reference} --out {output} "
        "--settings {params.settings:q} --log {log}"
