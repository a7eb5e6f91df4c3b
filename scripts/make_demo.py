#!/usr/bin/env python
"""Generate the demo micrographs (dualgen.data.phantom): images, exact (HQ) masks and model-made (LQ) masks.

Writes OUT/images/demo_NN.png, OUT/masks_hq/demo_NN.png and OUT/masks_lq/demo_NN.png; masks use the
palette values of config's classes (like the paper's grayscale masks). ``demo.kind``: rgb (the default, the
paper's magnet in colour, 4 classes) or sem (a gray SEM-like steel, 5 classes, an info band below each micrograph
that the masks do not cover). The LQ masks carry dualgen.data.labelnoise faults (the code of data.simulate_lq);
meta.json gives their disagreement with the HQ masks (share of pixels changed, per class). Same settings -> same
bytes.
"""

import numpy as np

from dualgen.core import artifacts, cli
from dualgen.data import io, labelnoise, phantom


def main(args):
    s = cli.settings(args)
    demo, classes = s["demo"], s["classes"]
    kind = demo.get("kind", "rgb")  # rules/data.smk leaves kind rgb out (the demo's settings before kinds existed)
    names, generate, lq_settings = phantom.KINDS[kind]
    phantom.check_classes(kind, len(classes))
    lut = np.array([c["value"] for c in classes], dtype=np.uint8)
    extra, pairs = {}, []
    with artifacts.artifact_dir(args.out, "make_demo", s, demo["seed"], [], extra) as tmp:
        for sub in ("images", "masks_hq", "masks_lq"):
            (tmp / sub).mkdir()
        for i in range(demo["n_images"]):
            name = f"demo_{i:02d}"
            image, hq, lq = generate(demo["seed"] * 1000 + i, demo["height"], demo["width"], demo["scale"])
            io.write_png(tmp / "images" / f"{name}.png", image)
            io.write_png(tmp / "masks_hq" / f"{name}.png", lut[hq])
            io.write_png(tmp / "masks_lq" / f"{name}.png", lut[lq])
            pairs.append((hq, lq))
            band = f" + an info band of {image.shape[0] - hq.shape[0]} rows" if image.shape[0] > hq.shape[0] else ""
            print(
                f"[{i + 1}/{demo['n_images']}] {name}: {demo['width']}x{demo['height']} px{band}, LQ mask: "
                f"{(hq != lq).mean():.1%} of pixels changed",
                flush=True,
            )
        # the LQ masks are dualgen.data.labelnoise faults (as data.simulate_lq) at the phantom's scale
        stats = labelnoise.disagreement(pairs, len(names))
        stats["per_class"] = dict(zip(names, stats["per_class"]))
        extra["lq_disagreement"] = dict(stats, settings=lq_settings(demo["scale"]))
        shares = np.bincount(np.concatenate([hq.ravel() for hq, _ in pairs]), minlength=len(names))
        extra["class_shares"] = dict(zip(names, (shares / shares.sum()).tolist()))
        print("HQ masks: " + ", ".join(f"{n} {v:.2%}" for n, v in extra["class_shares"].items()), flush=True)
        print(
            "LQ masks: "
            + labelnoise.describe({"changed": stats["changed"], "per_class": list(stats["per_class"].values())}, names),
            flush=True,
        )


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--out", required=True, help="output folder (e.g. data/demo)")
    cli.run(main, p)
