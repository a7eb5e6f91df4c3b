#!/usr/bin/env python
"""Check a config file (and presets merged over config.yaml, as Snakemake does) without running anything.

Usage: python scripts/check_config.py [--base config.yaml] FILE [FILE ...]
Prints `ok: <mixes> mixes, pool of <n> synthetic pairs` or one `dualgen: error: ...` line.
"""

from pathlib import Path

from dualgen.core import cli
from dualgen.core.config import check_config, merged
from dualgen.segment.mixes import enumerate_mixes, pool_size


def main(args):
    config = merged(args.files, args.base)
    check_config(config)
    mixes = enumerate_mixes(config["mixes"], config["datasets"])
    print(f"ok: {len(mixes)} mixes, pool of {pool_size(config['mixes'], config['datasets'])} synthetic pairs")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--base", default=str(Path(__file__).resolve().parents[1] / "config.yaml"))
    p.add_argument("files", nargs="*", help="config files merged over --base in order")
    cli.run(main, p)
