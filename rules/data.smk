# Data stage: demo micrographs -> patches -> base datasets SHQ, SLQ, BLQ, BMQ (+ HQ test set).


include: "data_helpers.smk"


rule make_demo:
    output:
        directory(demo_dir()),
    log:
        f"data/logs/make_{os.path.basename(demo_dir())}.log",
    benchmark:
        f"data/logs/make_{os.path.basename(demo_dir())}.bench.tsv"
    conda:
        ENV
    params:
        run=script("make_demo"),
        settings=as_json(demo=demo_settings(), classes=CLASSES),
    shell:
        "{params.run} --out {output} --settings {params.settings:q} --log {log}"


rule patches:
    input:
        data_inputs(),
    output:
        directory(f"{OUT}/patches"),
    log:
        f"{LOGS}/patches.log",
    benchmark:
        f"{BENCH}/patches.tsv"
    conda:
        ENV
    params:
        run=script("make_patches"),
        settings=as_json(
            data=patches_data_settings(data_settings(), demo_dir()), patches=config["patches"], classes=CLASSES
        ),
    shell:
        "{params.run} --out {output} --settings {params.settings:q} --log {log}"


rule datasets:
    input:
        patches=rules.patches.output[0],
        lists=split_list_files(config["data"]),
    output:
        directory(f"{OUT}/datasets"),
    log:
        f"{LOGS}/datasets.log",
    benchmark:
        f"{BENCH}/datasets.tsv"
    conda:
        ENV
    params:
        run=script("make_datasets"),
        settings=as_json(
            datasets={k: v for k, v in config["datasets"].items() if k != "preview"},
            test_sources=[] if split_list_files(config["data"]) else config["data"]["test_sources"],
            splits=config["data"]["splits"],
            classes=CLASSES,
        ),
    shell:
        "{params.run} --patches {input.patches} --out {output} " "--settings {params.settings:q} --log {log}"
