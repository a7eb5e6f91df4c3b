#!/usr/bin/env python
"""Cut the source micrographs and masks into a grid of patches (size, stride, filters from --settings).

Reads data.images / data.masks / data.hq_masks; cuts info bands (data.crop_height: N or auto, data.max_band),
makes the set all gray or all colour, resizes (data.scale), simulates LQ masks (data.simulate_lq). Writes
OUT/images, OUT/lq, OUT/hq (PNG per patch), OUT/patches.csv (id, source, position, HQ available, rare, class
fractions of the HQ and LQ masks), OUT/sources.csv (per image: file size, rows cut, size used, gray, patches)
and OUT/meta.json (with the scale, the channel count and the simulated disagreement).
"""

from dualgen.core import artifacts, cli
from dualgen.data import patches


def main(args):
    s = cli.settings(args)
    data, p, classes = s["data"], s["patches"], s["classes"]
    keep_rare = patches.class_ids(p["keep_rare"], classes)
    simulate = data["simulate_lq"]
    scale = data["scale"]
    sources = patches.load_sources(
        data["images"],
        data["masks"],
        None if simulate else data["hq_masks"],
        classes,
        data["mask_format"],
        data["crop_height"],
        data["max_pixels"],
        max_band=data["max_band"],
        scale=scale,
    )
    extra = {
        "channels": int(sources[0].image.shape[2]),
        "scale": scale,
        "rows_cut": {src.name: src.info["rows_cut"] for src in sources if src.info["rows_cut"]},
    }
    if simulate:
        extra["simulated_lq"] = patches.simulate_lq(sources, simulate, len(classes), [c["name"] for c in classes])
    kept = patches.cut(
        sources,
        p["size"],
        p["stride"] or p["size"],
        p["drop_background_only"],
        p["exclude"],
        num_classes=len(classes),
        keep_rare=keep_rare,
    )
    inputs = [d for d in (data["images"], data["masks"], None if simulate else data["hq_masks"]) if d]
    extra["n_patches"] = len(kept)
    with artifacts.artifact_dir(args.out, "patches", s, (simulate or {}).get("seed"), inputs, extra) as tmp:
        patches.write(kept, tmp, sources)


if __name__ == "__main__":
    ap = cli.parser(__doc__)
    ap.add_argument("--out", required=True, help="output folder (results/<study>/patches)")
    cli.run(main, ap)
