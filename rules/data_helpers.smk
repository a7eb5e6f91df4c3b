# Helpers of the data stage (rules/data.smk).
from dualgen.core.config import patches_data_settings, split_list_files


def data_settings():
    """The data section, with the demo folders filled in when dualgen makes the data itself."""
    data = dict(config["data"])
    if data["source"] == "demo":
        data.update(
            images=f"{DEMO_DIR}/images",
            masks=f"{DEMO_DIR}/masks_lq",
            hq_masks=f"{DEMO_DIR}/masks_hq",
            mask_format="palette",
            crop_height=None,
        )
    return data


def data_inputs():
    """The folders the patches step reads: the demo data, or the config's images, masks and HQ masks."""
    if config["data"]["source"] == "demo":
        return [DEMO_DIR]
    data = config["data"]
    return [d for d in (data["images"], data["masks"], data["hq_masks"]) if d]
