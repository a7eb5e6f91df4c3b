# Data stage: demo micrographs -> patches -> base datasets SHQ, SLQ, BLQ, BMQ (+ HQ test set).


rule make_demo:
    output:
        directory(DEMO_DIR),
    params:
        run=script("make_demo"),
        settings=as_json(demo=config["data"].get("demo", {}), classes=config["classes"]),
    log:
        "data/logs/make_demo.log",
    benchmark:
        "data/logs/make_demo.bench.tsv"
    conda:
        ENV
    shell:
        "{params.run} --out {output} --settings {params.settings:q} --log {log}"


rule patches:
    input:
        data_inputs(),
    output:
        directory(f"{OUT}/patches"),
    params:
        run=script("make_patches"),
        settings=as_json(data=data_settings(), patches=config["patches"], classes=config["classes"]),
    log:
        f"{LOGS}/patches.log",
    benchmark:
        f"{BENCH}/patches.tsv"
    conda:
        ENV
    shell:
        "{params.run} --out {output} --settings {params.settings:q} --log {log}"


rule datasets:
    input:
        patches=rules.patches.output[0],
    output:
        report(directory(f"{OUT}/datasets"), patterns=["{name}.png"], caption="../report/datasets.rst", category="1 Data"),
    params:
        run=script("make_datasets"),
        settings=as_json(
            datasets=config["datasets"], classes=config["classes"], test_sources=config["data"].get("test_sources", [])
        ),
    log:
        f"{LOGS}/datasets.log",
    benchmark:
        f"{BENCH}/datasets.tsv"
    conda:
        ENV
    shell:
        "{params.run} --patches {input.patches} --out {output} "
        "--settings {params.settings:q} --log {log}"
