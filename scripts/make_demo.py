#!/usr/bin/env python
"""Generate the demo micrographs (dualgen.data.phantom): images, exact (HQ) masks and model-made (LQ) masks.

Writes OUT/images/demo_NN.png, OUT/masks_hq/demo_NN.png and OUT/masks_lq/demo_NN.png; masks use the
palette values of config's classes (like the paper's grayscale masks). The LQ masks carry dualgen.data.labelnoise
faults (the code of data.simulate_lq); meta.json gives their disagreement with the HQ masks (share of pixels
changed, per class). Same settings -> same bytes.
"""

import numpy as np

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import io, labelnoise, phantom


def main(args):
    s = cli.settings(args)
    demo, classes = s["demo"], s["classes"]
    if len(classes) != len(phantom.CLASS_NAMES):
        raise DualgenError(
            f"config: classes has {len(classes)} entries but the demo data has {len(phantom.CLASS_NAMES)} classes "
            f"({', '.join(phantom.CLASS_NAMES)}): use the default classes with data.source: demo"
        )
    values = [c["value"] for c in classes]
    lut = np.array(values, dtype=np.uint8) if not isinstance(values[0], list) else np.array(values, dtype=np.uint8)
    extra, pairs = {}, []
    with artifacts.artifact_dir(args.out, "make_demo", s, demo["seed"], [], extra) as tmp:
        for sub in ("images", "masks_hq", "masks_lq"):
            (tmp / sub).mkdir()
        for i in range(demo["n_images"]):
            name = f"demo_{i:02d}"
            image, hq, lq = phantom.generate(demo["seed"] * 1000 + i, demo["height"], demo["width"], demo["scale"])
            io.write_png(tmp / "images" / f"{name}.png", image)
            io.write_png(tmp / "masks_hq" / f"{name}.png", lut[hq])
            io.write_png(tmp / "masks_lq" / f"{name}.png", lut[lq])
            pairs.append((hq, lq))
            print(
                f"[{i + 1}/{demo['n_images']}] {name}: {demo['width']}x{demo['height']} px, LQ mask: "
                f"{(hq != lq).mean():.1%} of pixels changed",
                flush=True,
            )
        # the LQ masks are dualgen.data.labelnoise faults (as data.simulate_lq) at the phantom's scale
        stats = labelnoise.disagreement(pairs, len(phantom.CLASS_NAMES))
        stats["per_class"] = dict(zip(phantom.CLASS_NAMES, stats["per_class"]))
        extra["lq_disagreement"] = dict(stats, settings=labelnoise.phantom_settings(demo["scale"]))
        print(
            "LQ masks: "
            + labelnoise.describe(
                {"changed": stats["changed"], "per_class": list(stats["per_class"].values())}, phantom.CLASS_NAMES
            ),
            flush=True,
        )


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True, help="output folder (e.g. data/demo)")
    cli.run(main, p)
