"""A PixelCNN's spec, saved and loaded with its weights.

``save(model, folder, spec)`` writes the weights (a tf.train.Checkpoint) and ``spec.json`` (kind, num_embeddings,
filters, num_blocks, the code grid's shape, cond_dim and position, and the blocks' dilations where set, ``make_spec``)
into a folder; ``load(folder)`` rebuilds the model from them. Kind "maskgit" (``maskgit.MaskGIT``) has the spec keys
``MASKGIT_SPEC_KEYS`` instead (kind, num_embeddings, grid_shape, cond_dim and pixelcnn.maskgit's dim, depth, heads,
steps).
"""

from pathlib import Path

import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.artifacts import read_spec, write_spec
from dualgen.core.errors import DualgenError
from dualgen.generate.pixelcnn.model import PixelCNN, check_dilations

SPEC_KEYS = ("kind", "num_embeddings", "filters", "num_blocks", "grid_shape", "cond_dim", "position")
MASKGIT_SPEC_KEYS = ("kind", "num_embeddings", "grid_shape", "cond_dim", "dim", "depth", "heads", "steps")
WEIGHT_SEED = 0  # the stateless seed of a built model's initial weights (pixelcnn.seed orders the training data)


def make_spec(settings, kind, num_embeddings, grid_shape, cond_dim=0, position=True):
    """The spec of a PixelCNN of ``kind`` over (H, W) = ``grid_shape`` grids of ``num_embeddings`` codes, with
    config's ``pixelcnn`` settings (filters, num_blocks, dilations), conditioned on ``cond_dim`` values per grid (0:
    none), with the position term (``position``, see ``model``).

    Kind "maskgit": reads ``settings.get("maskgit", {})`` instead (dim, depth, heads, steps; a key left out takes
    ``maskgit.DEFAULTS``: 64, 2, 4, 12); ``position`` is ignored (the transformer always embeds every cell's
    position)."""
    if kind == "maskgit":
        return _maskgit_spec(settings, num_embeddings, grid_shape, cond_dim)
    spec = {
        "kind": kind,
        "num_embeddings": int(num_embeddings),
        "filters": int(settings["filters"]),
        "num_blocks": int(settings["num_blocks"]),
        "grid_shape": [int(n) for n in grid_shape],
        "cond_dim": int(cond_dim),
        "position": bool(position),
    }
    if settings.get("dilations") is not None:  # left out otherwise: a spec from before dilations reads the same
        spec["dilations"] = list(check_dilations(settings["dilations"], spec["num_blocks"]))
    return spec


def _maskgit_spec(settings, num_embeddings, grid_shape, cond_dim):
    from dualgen.generate.pixelcnn import maskgit

    given = settings.get("maskgit", {})
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise DualgenError(f"pixelcnn.maskgit is {given!r}: give a mapping of {', '.join(maskgit.DEFAULTS)}")
    unknown = sorted(set(given) - set(maskgit.DEFAULTS))
    if unknown:
        raise DualgenError(f"pixelcnn.maskgit.{unknown[0]} is not a MaskGIT setting: use {', '.join(maskgit.DEFAULTS)}")
    values = {**maskgit.DEFAULTS, **given}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DualgenError(f"pixelcnn.maskgit.{key} is {value!r}: use an integer >= 1")
    if values["dim"] % values["heads"]:
        raise DualgenError(
            f"pixelcnn.maskgit.dim {values['dim']} is not a multiple of pixelcnn.maskgit.heads {values['heads']}: "
            "make dim a multiple of heads (e.g. dim 64, heads 4)"
        )
    return {
        "kind": "maskgit",
        "num_embeddings": int(num_embeddings),
        "grid_shape": [int(n) for n in grid_shape],
        "cond_dim": int(cond_dim),
        **{key: int(values[key]) for key in maskgit.DEFAULTS},
    }


def build(spec):
    """A fresh (untrained) PixelCNN (or MaskGIT, kind "maskgit") from a spec (initial weights: seed
    ``WEIGHT_SEED``)."""
    if spec["kind"] == "maskgit":
        from dualgen.generate.pixelcnn import maskgit

        return maskgit.MaskGIT(
            spec["num_embeddings"],
            spec["grid_shape"],
            dim=spec["dim"],
            depth=spec["depth"],
            heads=spec["heads"],
            seed=WEIGHT_SEED,
            cond_dim=spec["cond_dim"],
            steps=spec["steps"],
        )
    return PixelCNN(
        spec["num_embeddings"],
        filters=spec["filters"],
        num_blocks=spec["num_blocks"],
        kind=spec["kind"],
        seed=WEIGHT_SEED,
        cond_dim=spec["cond_dim"],
        grid_shape=spec["grid_shape"] if spec["position"] else None,
        dilations=spec.get("dilations"),
    )


def save(model, folder, spec):
    """Write the weights (``ckpt.*``) and ``spec.json`` into ``folder`` (made if missing). For a folder that appears
    whole or not at all, save into ``artifacts.atomic_dir`` (or ``artifact_dir``)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(model=model).write(str(Path(folder) / "ckpt"))
    write_spec(folder, spec)


def load(folder):
    """(model, spec) from a folder ``save`` wrote; a missing or damaged one is a DualgenError naming it."""
    folder = Path(folder)
    spec = read_spec(folder, "PixelCNN", (), "train_pixelcnn")  # the kind says which keys it must hold
    keys = MASKGIT_SPEC_KEYS if isinstance(spec, dict) and spec.get("kind") == "maskgit" else SPEC_KEYS
    spec = read_spec(folder, "PixelCNN", keys, "train_pixelcnn")
    model = build(spec)
    try:
        tf.train.Checkpoint(model=model).read(str(folder / "ckpt")).assert_existing_objects_matched().expect_partial()
    except Exception as err:  # noqa: BLE001  (mismatch: AssertionError/ValueError; damage: OpError, ...)
        raise DualgenError(
            f"{folder}: cannot load the PixelCNN ({type(err).__name__}): delete the folder and rerun train_pixelcnn"
        ) from None
    return model, spec
