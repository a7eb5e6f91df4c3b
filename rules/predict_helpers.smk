# Helpers of the predict stage (rules/predict.smk).
MODEL = f"{OUT}/model"


def export_mixes():
    """The mixes export_model may take: all of them for predict.mix best, else the one named."""
    chosen = config["predict"]["mix"]
    return [m.name for m in MIXES] if chosen == "best" else [chosen]


def export_chunks():
    return [path for mix in export_mixes() for path in mix_chunks(mix)]


def export_scores():
    """The whole_image outputs whose validation scores choose the best mix (none when predict.mix names one)."""
    return [f"{OUT}/whole/{mix}" for mix in export_mixes()] if config["predict"]["mix"] == "best" else []


def export_settings():
    """What the exported model depends on: the mix asked for, the classes with their colours (preprocess.json keeps
    them for the overlays), the info-band rule, data.scale, data.max_pixels and the window size."""
    data = patches_data_settings(data_settings(), demo_dir())
    return as_json(
        predict={"mix": config["predict"]["mix"]},
        classes=config["classes"],
        data={k: data[k] for k in ("crop_height", "scale", "max_pixels")},
        patches={"size": config["patches"]["size"]},
    )


def predict_flags():
    """predict.* as scripts/predict.py's flags (the script also runs by hand, without a config)."""
    p = config["predict"]
    flags = f"--overlap {p['overlap']} --batch-size {p['batch_size']}"
    return flags + (" --tta" if p["tta"] else " --no-tta") + (" --ensemble" if p["ensemble"] else " --no-ensemble")
