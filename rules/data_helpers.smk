# Helpers of the data stage (rules/data.smk).
from dualgen.core.config import patches_data_settings, split_list_files
from dualgen.data import phantom


def demo_kind():
    return config["data"]["demo"]["kind"]


if config["data"]["source"] == "demo":
    try:
        phantom.check_classes(demo_kind(), len(CLASSES))  # when the workflow loads, not when make_demo runs
    except DualgenError as err:
        raise SystemExit(f"dualgen: error: {err}")


def demo_dir():
    """Where the demo micrographs go: data/demo for data.demo.kind rgb, data/demo_<kind> for another kind (so
    studies on the two demos do not overwrite each other's data)."""
    return DEMO_DIR if demo_kind() == "rgb" else f"{DEMO_DIR}_{demo_kind()}"


def demo_settings():
    """data.demo as make_demo's params: kind rgb is left out (the settings of the demo before kinds existed, so a
    finished default study does not rerun)."""
    demo = config["data"]["demo"]
    return {k: v for k, v in demo.items() if not (k == "kind" and v == "rgb")}


def data_settings():
    """The data section, with the demo folders filled in when dualgen makes the data itself. The SEM demo's
    micrographs carry an info band below the masks' area: crop_height auto cuts it (data.max_band applies)."""
    data = dict(config["data"])
    if data["source"] == "demo":
        data.update(
            images=f"{demo_dir()}/images",
            masks=f"{demo_dir()}/masks_lq",
            hq_masks=f"{demo_dir()}/masks_hq",
            mask_format="palette",
            crop_height=None if demo_kind() == "rgb" else "auto",
        )
    return data


def data_inputs():
    """The folders the patches step reads: the demo data, or the config's images, masks and HQ masks."""
    if config["data"]["source"] == "demo":
        return [demo_dir()]
    data = config["data"]
    return [d for d in (data["images"], data["masks"], data["hq_masks"]) if d]
