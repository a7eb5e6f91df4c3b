# The study's model for a lab: the seed U-Nets of one mix (predict.mix; best = the highest validation Missing Class
# IoU from the whole_image steps, never the test set) exported with preprocess.json (model/), and new micrographs
# (predict.images) segmented with it (predict/). predict.* settings other than mix reach only the predict rule.


include: "predict_helpers.smk"


rule export_model:
    input:
        unet=export_chunks(),
        whole=export_scores(),
        patches=rules.patches.output[0],
    output:
        directory(MODEL),
    log:
        f"{LOGS}/export_model.log",
    benchmark:
        f"{BENCH}/export_model.tsv"
    conda:
        ENV
    params:
        run=script("export_model"),
        unet=" ".join(f"{mix}={path}" for mix in export_mixes() for path in mix_chunks(mix)),
        settings=export_settings(),
    shell:
        "{params.run} --unet {params.unet} --whole {input.whole} --patches {input.patches} --out {output} "
        "--settings {params.settings:q} --log {log}"


rule predict:
    input:
        model=MODEL,
        images=config["predict"]["images"] or [],
    output:
        directory(f"{OUT}/predict"),
    log:
        f"{LOGS}/predict.log",
    benchmark:
        f"{BENCH}/predict.tsv"
    conda:
        ENV
    threads: 1
    params:
        run=script("predict"),
        flags=predict_flags(),
        settings=as_json(determinism=config["determinism"]),
    shell:
        "{params.run} --model {input.model} --images {input.images} --out {output} {params.flags} "
        "--threads {threads} --settings {params.settings:q} --log {log}"
