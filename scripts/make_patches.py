#!/usr/bin/env python
"""Cut the source micrographs and masks into a grid of patches (size, stride, filters from --settings).

Reads data.images / data.masks / data.hq_masks; writes OUT/images, OUT/lq, OUT/hq (PNG per patch),
OUT/patches.csv (id, source, position, HQ available, class fractions) and OUT/meta.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dualgen import artifacts, cli, patches  # noqa: E402


def main(args):
    s = cli.settings(args)
    data, p = s["data"], s["patches"]
    sources = patches.load_sources(
        data["images"], data["masks"], data.get("hq_masks"), s["classes"], data.get("mask_format", "palette"),
        data.get("crop_height"), data.get("max_pixels", 100_000_000),
    )
    kept = patches.cut(sources, p["size"], p.get("stride", p["size"]), p.get("drop_background_only", True),
                       p.get("exclude", []), num_classes=len(s["classes"]))
    inputs = [d for d in (data["images"], data["masks"], data.get("hq_masks")) if d]
    extra = {"n_patches": len(kept), "channels": int(sources[0].image.shape[2])}
    with artifacts.artifact_dir(args.out, "patches", s, None, inputs, extra) as tmp:
        patches.write(kept, tmp)


if __name__ == "__main__":
    ap = cli.parser(__doc__)
    ap.add_argument("--out", required=True, help="output folder (results/<study>/patches)")
    cli.run(main, ap)
