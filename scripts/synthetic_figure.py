#!/usr/bin/env python
"""Figure of synthetic pairs (paper Fig. 10): synthetic micrographs with their cleaned masks in the class
colours, next to the same number of real training patches. Writes OUT/synthetic_vs_real.png, meta.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dualgen import artifacts, cli, datasets, io, plots  # noqa: E402


def main(args):
    s = cli.settings(args)
    n, classes = s["n"], s["classes"]
    clean = Path(args.clean)
    names = sorted(p.name for p in (clean / "images").glob("synth_*.png"))[:n]
    synth = [(io.read_png(clean / "images" / nm), io.read_png(clean / "masks" / nm)) for nm in names]
    _, images, masks = datasets.load(args.patches, Path(args.datasets) / "BMQ.csv", "train")
    real = list(zip(images[:len(synth)], masks[:len(synth)]))
    per_row = min(4, max(1, len(synth)))
    rows = [(f"synthetic {i // per_row + 1}", synth[i:i + per_row]) for i in range(0, len(synth), per_row)]
    rows += [(f"real {i // per_row + 1}", real[i:i + per_row]) for i in range(0, len(real), per_row)]
    inputs = [clean / "pool.csv", Path(args.datasets) / "BMQ.csv"]
    with artifacts.artifact_dir(args.out, "synthetic_figure", s, None, inputs, {"n": len(synth)}) as tmp:
        plots.pair_grid(rows, classes, tmp / "synthetic_vs_real.png",
                        title="Synthetic pairs (top) and real BMQ training patches (bottom), paper Fig. 10")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--clean", required=True, help="the postprocess step's folder")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
