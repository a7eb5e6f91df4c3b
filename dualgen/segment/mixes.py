"""The training mixes of the study (paper Tables 5 and 6): the one place that names them.

Four base sets x synthetic additions in % of the base training size, plus the pure-synthetic sets
SyntLQ / SyntMQ (synthetic only, in % of the big training size, validated on BLQ / BMQ's real
validation images), plus BMQ_aug (BMQ with Albumentations, no synthetic data), plus the pretrain-then-finetune
arm <BASE>_pt<pct:03d> (synthetic pairs first, then the base's real training set, one budget), plus the balanced
arm <BASE>_bal<pct:03d> (real + synthetic pairs from the conditioned prior asked for more of the rare classes,
sample.targets; same sizes as <BASE>_<pct:03d>), plus the real-only learning curve SHQr<pct:03d> (``mixes.real_sizes``:
pct % of the small training size in real HQ patches, no synthetic data: SHQ's training patches first, then the big
training set's patches that have HQ masks; validated on SHQ's; the curve that prices a synthetic pair in labels).
Names: <BASE>_<pct:03d>. Every mix with synthetic data is
compared with its reference (``reference``): its own base's 0 % mix, BLQ_000 / BMQ_000 for SyntLQ / SyntMQ,
BMQ_000 for BMQ_aug; a balanced mix also with the unconditioned mix of its size (``comparison_pairs``).
The rules, the plots and the tests all ask ``enumerate_mixes``.
"""

import math
from dataclasses import asdict, dataclass

from dualgen.core.errors import DualgenError

SYNTHETIC = {"SyntLQ": "BLQ", "SyntMQ": "BMQ"}  # pure-synthetic set -> base whose real validation it uses
AUG_MIX = "BMQ_aug"
REAL_ARM = "SHQr"  # the real-only learning curve's mixes: SHQr<pct:03d>


@dataclass(frozen=True)
class Mix:
    name: str
    base: str  # SHQ, SLQ, BLQ, BMQ, SyntLQ, SyntMQ
    percent: int  # synthetic amount in % of the (base or big) training size
    real_from: str | None  # base set whose real training patches are used (None: synthetic only)
    val_from: str  # base set whose real validation patches are used
    n_real: int
    n_synth: int
    augment: bool = False
    pretrain: bool = False  # train on the n_synth synthetic pairs first, then fine-tune on the real ones
    balanced: bool = False  # synthetic pairs from the balanced pool (conditioned prior, sample.targets)
    real_only: bool = False  # the real-only learning curve (REAL_ARM): n_real HQ patches, nothing synthetic

    @property
    def pure_synthetic(self):
        return self.real_from is None


def train_size(base, datasets):
    return datasets["small_train"] if base in ("SHQ", "SLQ") else datasets["big_train"]


def n_synthetic(percent, train):
    return int(math.floor(percent * train / 100 + 0.5))


def enumerate_mixes(mixes_cfg, datasets):
    """All mixes the config asks for, in a stable order."""
    out = []
    for base in mixes_cfg["bases"]:
        n = train_size(base, datasets)
        for pct in mixes_cfg["levels"]:
            out.append(Mix(f"{base}_{pct:03d}", base, pct, base, base, n, n_synthetic(pct, n)))
    for synt in mixes_cfg["synthetic"]:
        val = SYNTHETIC[synt]
        for pct in mixes_cfg["synthetic_levels"]:
            if pct <= 0:
                raise DualgenError(
                    f"config: mixes.synthetic_levels: {pct} % would train {synt} on nothing: use levels > 0"
                )
            out.append(Mix(f"{synt}_{pct:03d}", synt, pct, None, val, 0, n_synthetic(pct, datasets["big_train"])))
    for base in mixes_cfg["bases"]:
        n = train_size(base, datasets)
        for pct in mixes_cfg["pretrain"]:
            out.append(Mix(f"{base}_pt{pct:03d}", base, pct, base, base, n, n_synthetic(pct, n), pretrain=True))
    for base in [b for b in mixes_cfg["balanced_bases"] if b in mixes_cfg["bases"]]:
        n = train_size(base, datasets)
        for pct in mixes_cfg["balanced"]:
            out.append(Mix(f"{base}_bal{pct:03d}", base, pct, base, base, n, n_synthetic(pct, n), balanced=True))
    if mixes_cfg["augmentation"]:
        n = datasets["big_train"]
        out.append(Mix(AUG_MIX, "BMQ", 0, "BMQ", "BMQ", n, 0, augment=True))
    for pct in mixes_cfg["real_sizes"]:
        n = max(1, n_synthetic(pct, datasets["small_train"]))
        out.append(Mix(f"{REAL_ARM}{pct:03d}", "SHQ", pct, "SHQ", "SHQ", n, 0, real_only=True))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DualgenError(f"config: mixes: the mix {dup} appears twice: list each level once")
    return out


def pool_size(mixes_cfg, datasets, balanced=False):
    """Synthetic pairs the study needs from one pool (every mix takes a nested prefix): the unconditioned pool,
    or with ``balanced`` the balanced one."""
    return max([m.n_synth for m in enumerate_mixes(mixes_cfg, datasets) if m.balanced == balanced] + [0])


def fields(mix):
    """A mix's fields as the rules pass them (``Mix(**fields(mix))`` rebuilds it); ``real_only`` only when set (so
    the other mixes' settings, and their trainings, stay as they were before the arm existed)."""
    out = asdict(mix)
    if not out["real_only"]:
        del out["real_only"]
    return out


def reference(mix):
    """The 0 % mix a mix is compared with (same real validation data): its base's for a base set or the
    pretrain arm, BLQ_000 / BMQ_000 for SyntLQ / SyntMQ and BMQ_aug. None for the 0 % mixes themselves and the
    real-only learning curve (priced in labels instead: dualgen.report.equivalence)."""
    if (mix.percent == 0 and not mix.augment) or mix.real_only:
        return None
    return f"{mix.val_from}_000"


def unconditioned_twin(mix):
    """The mix of the same base and size with pairs from the unconditioned pool (a balanced mix's second
    reference); None for the others."""
    return f"{mix.base}_{mix.percent:03d}" if mix.balanced else None


def comparison_pairs(all_mixes):
    """(mix, reference) for every mix whose reference the config trains; a balanced mix also against its
    unconditioned twin."""
    names = {m.name for m in all_mixes}
    pairs = [(m.name, reference(m)) for m in all_mixes if reference(m) in names]
    return pairs + [(m.name, unconditioned_twin(m)) for m in all_mixes if unconditioned_twin(m) in names]
