"""The U-Net of every mix (paper Table 3, qubvel's segmentation_models 1.0.1 on tf-keras).

- ``build_unet``: ``sm.Unet(backbone, classes=n, activation="softmax")``. With ``encoder_weights="imagenet"`` the
  weights file must already be in the Keras cache (``~/.keras/models/``, or ``$KERAS_HOME/models/``): dualgen
  never downloads. A missing file is a one-line DualgenError naming the file, the exact path and the download
  address (or: set ``unet.encoder_weights: null``); this is checked where segmentation_models asks Keras for the
  file, before any network access.
- Input scaling (``preprocess``): with random initialisation (``encoder_weights`` null) pixels / 255, and the
  image's own channel count (1 or 3). With ImageNet weights the backbone's own preprocessing
  (``sm.get_preprocessing(backbone)`` on 0..255: resnets take raw pixels, efficientnets the torch mean/std,
  mobilenets [-1, 1]) on 3 channels: a gray image's channel is repeated 3 times and the model has 3 input
  channels. ``predict`` applies the same scaling, so train and test always match.
- Training: ``dualgen.segment.unet_train`` (budgets, resume); the input pipeline: ``dualgen.segment.unet_data``.
- Weights: ``save_weights`` writes them without the optimizer's state; ``load_weights`` reads them with a one-line
  error.
- Persistence: ``save(model, folder, spec)`` writes the weights (``best.weights.h5``, no optimizer state) and
  ``spec.json`` (``build_unet``'s arguments: backbone, encoder_weights (also for ``preprocess``), num_classes,
  input_shape, bn_momentum, mixed_precision, decoder_filters, encoder_depth; ``make_spec``) into a folder;
  ``load(folder)`` rebuilds the model from them (never needing the ImageNet weights file).
- Learned features (``encoder_features``): the encoder's feature maps at given strides, the feature space of the
  image-domain fidelity statistic and of a VQ-VAE's perceptual loss (no ImageNet weights needed).
- Nearest upsampling: ``build_unet`` swaps segmentation_models' ``UpSampling2D`` for
  ``dualgen.segment.upsampling.DeterministicUpSampling2D`` (same values, a gradient that runs on a GPU under op
  determinism).
"""

import os
import warnings
from pathlib import Path

import numpy as np
import segmentation_models as sm
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow / segmentation_models)
from dualgen.core.artifacts import atomic_path, read_spec, write_spec
from dualgen.core.errors import DualgenError
from dualgen.segment import upsampling
from dualgen.segment.unet_data import as_images

SPEC_KEYS = (
    "backbone",
    "num_classes",
    "input_shape",
    "encoder_weights",
    "bn_momentum",
    "mixed_precision",
    "decoder_filters",
    "encoder_depth",
)  # build_unet's arguments, as spec.json holds them
SM_DECODER = (256, 128, 64, 32, 16)  # segmentation_models' default decoder widths (the paper's), deepest first
WEIGHTS = "best.weights.h5"  # what ``save`` writes; the ending tells tf-keras the format (Keras 3 style)


def backbones():
    """The backbone names segmentation_models 1.0.1 accepts."""
    return list(sm.Backbones.models_names())


# ---------------------------------------------------------------------------------------------- weights


def _cache_candidates(fname, cache_subdir, cache_dir):
    """Where Keras' get_file would find ``fname``: cache_dir, else $KERAS_HOME, ~/.keras and /tmp/.keras (tf-keras
    falls back to /tmp/.keras when ~/.keras is not writable). The first one is where the user should put it."""
    if cache_dir:
        bases = [Path(cache_dir).expanduser()]
    else:
        bases = [Path(os.environ["KERAS_HOME"]).expanduser()] if os.environ.get("KERAS_HOME") else []
        bases += [Path(os.path.expanduser("~")) / ".keras", Path("/tmp") / ".keras"]
    return [b / cache_subdir / fname for b in bases]


class _NoDownload:
    """While active, the get_file that segmentation_models (and classification_models, efficientnet,
    keras_applications through it) calls only returns files already in the Keras cache. A missing or corrupt
    file is a DualgenError that says where to put it; the network is never tried."""

    def __init__(self, backbone):
        self.backbone = backbone

    def __enter__(self):
        self._utils = sm._KERAS_UTILS  # the module object segmentation_models injects (== tf.keras.utils)
        self._orig = self._utils.get_file
        backbone = self.backbone

        def get_file(
            fname=None,
            origin=None,
            untar=False,
            md5_hash=None,
            file_hash=None,
            cache_subdir="datasets",
            hash_algorithm="auto",
            extract=False,
            archive_format="auto",
            cache_dir=None,
            **kwargs,
        ):
            candidates = _cache_candidates(fname, cache_subdir, cache_dir)
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise DualgenError(
                    f"ImageNet weights for unet.backbone {backbone} missing: put {fname} (download: {origin}) at "
                    f"{candidates[0]}, or set unet.encoder_weights: null"
                )
            expected = file_hash or md5_hash
            if expected:
                from tf_keras.src.utils.data_utils import validate_file

                algorithm = "md5" if (md5_hash and not file_hash) else hash_algorithm
                if not validate_file(str(found), expected, algorithm=algorithm):
                    raise DualgenError(
                        f"ImageNet weights {found} are corrupt or incomplete (hash differs from {expected}): "
                        f"replace it with a fresh download of {origin}, or set unet.encoder_weights: null"
                    )
            return str(found)

        self._utils.get_file = get_file
        return self

    def __exit__(self, *exc):
        self._utils.get_file = self._orig


# ---------------------------------------------------------------------------------------------- model


def build_unet(
    backbone, encoder_weights, num_classes, input_shape, bn_momentum, mixed_precision, decoder_filters, encoder_depth
):
    """``sm.Unet`` with a softmax over ``num_classes``; ``input_shape`` (H, W, C), H and W multiples of
    2 ** ``encoder_depth``.

    With ``encoder_weights="imagenet"`` a 1-channel ``input_shape`` gives a 3-channel model (``preprocess``
    repeats the channel). ``bn_momentum`` (None: the backbone's own) overrides BatchNormalization's momentum (short
    CPU runs). ``decoder_filters`` (``encoder_depth`` numbers, deepest first): the decoder's widths (None: the
    last ``encoder_depth`` of segmentation_models' 256..16; a slimmer decoder trains faster on a CPU).
    ``encoder_depth`` (3..5): the encoder's downsamplings; 5 is ``sm.Unet``. Below 5 the
    backbone ends at its 1/2**depth feature layer (segmentation_models' skip layer there, so 5 - depth stages are
    cut: resnet18's last stage alone holds 8.4 of its 11.2 M weights) and the decoder has ``encoder_depth`` blocks
    on the remaining skips: the same U-Net without its 1/32 level, faster to train.
    ``mixed_precision``: true or "float16": layers under Keras' ``mixed_float16`` policy, "bfloat16":
    ``mixed_bfloat16`` (float32 variables, the same weight files), the final softmax in float32
    (``dualgen.core.precision``); float16 compiles with a LossScaleOptimizer (``unet_train.compile_unet``).
    The backbone name is kept as ``model.dualgen_backbone`` for ``predict``.
    """
    names = backbones()
    if backbone not in names:
        raise DualgenError(
            f"config: unet.backbone: unknown '{backbone}' (e.g. resnet18, mobilenetv2, efficientnetb0, "
            f"efficientnetb3; all: {', '.join(names)})"
        )
    if encoder_weights not in (None, "imagenet"):
        raise DualgenError(f"config: unet.encoder_weights: '{encoder_weights}' is neither imagenet nor null")
    depth = int(encoder_depth)
    if depth not in (3, 4, 5):
        raise DualgenError(f"config: unet.encoder_depth: {encoder_depth} is not 3, 4 or 5")
    filters = tuple(int(f) for f in decoder_filters) if decoder_filters else SM_DECODER[5 - depth :]
    if len(filters) != depth:
        raise DualgenError(
            f"config: unet.decoder_filters: {len(filters)} widths for unet.encoder_depth {depth}: "
            f"give {depth} (one per decoder block, deepest first) or null"
        )
    h, w, c = tuple(input_shape)
    for size in (h, w):
        if size is not None and int(size) % 2**depth:
            raise DualgenError(
                f"U-Net input {h}x{w}: height and width must be multiples of {2**depth} (the U-Net "
                f"halves them {depth} times): choose a patch size like 64, 128 or 256"
            )
    if c not in (1, 3):
        raise DualgenError(f"U-Net input has {c} channels: images must have 1 (gray) or 3 (RGB)")
    if encoder_weights:
        c = 3
    from dualgen.core import precision

    with _NoDownload(backbone), warnings.catch_warnings(), precision.keras_policy(mixed_precision):
        # keras_applications' MobileNets: "Weights for input shape (224, 224) will be loaded" (fine: convolutions)
        warnings.filterwarnings("ignore", message="`input_shape` is undefined or non-square")
        if depth == 5:
            model = sm.Unet(
                backbone,
                encoder_weights=encoder_weights,
                classes=int(num_classes),
                activation="softmax",
                input_shape=(h, w, c),
                decoder_filters=filters,
            )
        else:
            model = _shallow_unet(backbone, encoder_weights, int(num_classes), (h, w, c), filters)
    if mixed_precision:
        model = precision.float32_outputs(model)  # the softmax (and so the loss) in float32
    if bn_momentum is not None:  # short CPU runs: let BatchNorm's moving statistics catch up in few steps
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    model.dualgen_backbone = backbone
    return upsampling.replace_upsampling(model)  # UpSampling2D's gradient raises on GPUs under op determinism


def _shallow_unet(backbone, encoder_weights, num_classes, input_shape, filters):
    """segmentation_models' U-Net (its backbone, decoder blocks and head, ``build_unet``) on the backbone cut at
    its ``len(filters)``-deep feature layer: what ``sm.Unet`` builds, less the deepest 5 - len(filters) levels."""
    from segmentation_models.models import unet as smu

    keras = {
        "backend": sm._KERAS_BACKEND,
        "layers": sm._KERAS_LAYERS,
        "models": sm._KERAS_MODELS,
        "utils": sm._KERAS_UTILS,
    }  # the framework's modules, as sm.Unet is given them
    smu.backend, smu.layers, smu.models, smu.keras_utils = smu.get_submodules_from_kwargs(keras)  # as sm.Unet sets
    encoder = sm.Backbones.get_backbone(
        backbone, input_shape=input_shape, weights=encoder_weights, include_top=False, **keras
    )
    features = sm.Backbones.get_feature_layers(backbone, n=4)  # the 1/16, 1/8, 1/4, 1/2 layers
    cut = 5 - len(filters)
    encoder = keras["models"].Model(encoder.input, encoder.get_layer(features[cut - 1]).output, name=encoder.name)
    return smu.build_unet(
        encoder, smu.DecoderUpsamplingX2Block, features[cut:], filters, len(filters), num_classes, "softmax"
    )


def preprocess(images, encoder_weights=None, backbone=None):
    """uint8 (N, H, W[, C]) -> float32 network input (see the module docstring)."""
    x = as_images(images).astype(np.float32)
    if not encoder_weights:
        return x / 255.0
    if backbone is None:
        raise DualgenError("U-Net preprocessing for ImageNet weights needs the backbone name")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)  # ImageNet encoders expect 3 channels
    return np.asarray(sm.get_preprocessing(backbone)(x), dtype=np.float32)


def save_weights(model, path):
    """The model's weights without the optimizer's state (tf-keras 2.21 puts a compiled model's Adam moments into
    a ``.weights.h5`` file, tripling its size); ``model.load_weights`` reads it into a fresh, uncompiled model."""
    path = str(path)
    try:
        from tf_keras.src.saving import saving_lib

        store = saving_lib.H5IOStore(path, mode="w")
        try:
            skip = {id(model.optimizer)} if getattr(model, "optimizer", None) is not None else set()
            saving_lib._save_state(
                model, weights_store=store, assets_store=None, inner_path="", visited_trackables=skip
            )
        finally:
            store.close()
    except (ImportError, AttributeError, TypeError):  # another tf-keras: its own way, optimizer included
        model.save_weights(path)


def load_weights(model, path, optimizer=True):
    """load_weights with a one-line error; ``optimizer=False`` leaves a compiled model's optimizer alone (and
    without tf-keras' warning that the file has no optimizer variables)."""
    try:
        if optimizer or getattr(model, "optimizer", None) is None:
            model.load_weights(str(path))
        else:
            from tf_keras.src.saving import saving_lib

            store = saving_lib.H5IOStore(str(path), mode="r")
            try:
                saving_lib._load_state(
                    model,
                    weights_store=store,
                    assets_store=None,
                    inner_path="",
                    visited_trackables={id(model.optimizer)},
                )
            finally:
                store.close()
    except (OSError, ValueError, KeyError) as err:
        raise DualgenError(
            f"{path}: cannot load the U-Net weights ({type(err).__name__}): delete {path.parent} and train again"
        ) from None


# ---------------------------------------------------------------------------------------------- persistence


def _precision_spec(value):
    """config's mixed_precision as spec.json keeps it, "auto" resolved on this machine: false, true (float16),
    "bfloat16"."""
    from dualgen.core import precision

    return {None: False, "float16": True, "bfloat16": "bfloat16"}[precision.mode(precision.resolve(value))]


def make_spec(settings, num_classes, input_shape):
    """The spec of a U-Net: ``build_unet``'s arguments, from config's ``unet`` settings (backbone, encoder_weights,
    bn_momentum, mixed_precision, decoder_filters, encoder_depth), the number of classes and the images'
    ``input_shape`` (H, W, C)."""
    return {
        "backbone": settings["backbone"],
        "num_classes": int(num_classes),
        "input_shape": [None if n is None else int(n) for n in input_shape],
        "encoder_weights": settings["encoder_weights"],
        "bn_momentum": settings["bn_momentum"],
        "mixed_precision": _precision_spec(settings["mixed_precision"]),
        "decoder_filters": settings["decoder_filters"],
        "encoder_depth": int(settings["encoder_depth"]),
    }


def save(model, folder, spec):
    """Write the weights (``WEIGHTS``, without the optimizer's state) and ``spec.json`` into ``folder`` (made if
    missing), each file under a temporary name, then renamed."""
    with atomic_path(Path(folder) / WEIGHTS) as tmp:
        save_weights(model, tmp)
    write_spec(folder, spec)


def load(folder):
    """(model, spec) from a folder ``save`` wrote; a missing or damaged one is a DualgenError naming it. The model
    is built as ``build_unet(**spec)`` builds it, but without fetching encoder weights (they are in the file);
    ``spec["encoder_weights"]`` still tells ``predict`` how to scale the input."""
    folder = Path(folder)
    spec = read_spec(folder, "U-Net", SPEC_KEYS, "train_unet")
    h, w, c = spec["input_shape"]
    shape = (h, w, 3 if spec["encoder_weights"] else c)  # ImageNet encoders: 3 channels, as in build_unet
    model = build_unet(
        spec["backbone"],
        None,
        spec["num_classes"],
        shape,
        spec["bn_momentum"],
        spec["mixed_precision"],
        spec["decoder_filters"],
        spec["encoder_depth"],
    )
    try:
        model.load_weights(str(folder / WEIGHTS))
    except Exception as err:  # noqa: BLE001  (missing/damaged: OSError; another model: ValueError, KeyError, ...)
        raise DualgenError(
            f"{folder / WEIGHTS}: cannot load the U-Net weights ({type(err).__name__}): delete "
            f"{folder} and rerun train_unet"
        ) from None
    return model, spec


FEATURE_STRIDES = (4, 8)  # the encoder stages ``encoder_features`` returns by default (texture and edges: 1/4, 1/8)
_STRIDES = (16, 8, 4, 2)  # the order of segmentation_models' get_feature_layers(backbone, n=4)


def _layer(model, name):
    """The layer ``name`` of ``model``, else None."""
    return next((layer for layer in model.layers if layer.name == name), None)


def encoder_features(model, spec, strides=FEATURE_STRIDES):
    """A frozen function of float images (N, H, W, C) in [0, 255] (a tensor or an array; differentiable in them)
    to the list of the U-Net encoder's feature maps (float32, N, H/s, W/s, d_s) at each stride s of ``strides``:
    the backbone's skip layers (segmentation_models' ``get_feature_layers``: the input of a stage, after its
    activation). The images are scaled as ``preprocess`` scales them (random init: / 255; ImageNet weights: gray
    repeated to 3 channels, then the backbone's own preprocessing). ``spec``: the model's (``load``)."""
    names = dict(zip(_STRIDES, sm.Backbones.get_feature_layers(spec["backbone"], n=4)))
    layers = []
    for s in strides:
        layer = _layer(model, names.get(int(s), ""))
        if layer is None:
            have = [k for k in _STRIDES if _layer(model, names[k]) is not None]
            raise DualgenError(
                f"U-Net ({spec['backbone']}, encoder_depth {spec['encoder_depth']}): no encoder feature map at "
                f"stride {s}: use one of {', '.join(map(str, sorted(have)))}"
            )
        layers.append(layer.get_output_at(-1))  # its call in the final graph (build_unet rewires the upsampling)
    extractor = tf.keras.Model(model.input, layers)
    extractor.trainable = False
    imagenet = bool(spec["encoder_weights"])
    scale = None if not imagenet else sm.get_preprocessing(spec["backbone"])

    def features(images):
        x = tf.cast(images, tf.float32)
        if imagenet:
            x = scale(tf.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x)
        else:
            x = x / 255.0
        out = extractor(x, training=False)
        return [tf.cast(o, tf.float32) for o in (out if isinstance(out, (list, tuple)) else [out])]

    return features


def preprocessor(spec):
    """The input scaling of a model with this spec: uint8 (N, H, W, C) -> float32 network input."""
    return lambda images: preprocess(images, spec["encoder_weights"], spec["backbone"])


def predict_proba(model, images, batch_size=16, encoder_weights=None, backbone=None):
    """float32 class scores (N, H, W, K) (the softmax) for uint8 images (N, H, W[, C]), scaled as in training
    (``encoder_weights`` as trained; ``backbone`` defaults to the one ``build_unet`` recorded on the model). Eager
    calls in inference mode: for the few dozen test patches of a study this is faster than tracing Keras' predict
    function."""
    backbone = backbone or getattr(model, "dualgen_backbone", None)
    x = preprocess(images, encoder_weights, backbone)
    out = [
        np.asarray(model(x[i : i + int(batch_size)], training=False), np.float32)
        for i in range(0, len(x), int(batch_size))
    ]
    return np.concatenate(out) if out else np.zeros((*x.shape[:3], model.output_shape[-1]), np.float32)


def predict(model, images, batch_size=16, encoder_weights=None, backbone=None):
    """uint8 class maps (N, H, W) for uint8 images (N, H, W[, C]): the argmax of ``predict_proba``."""
    return predict_proba(model, images, batch_size, encoder_weights, backbone).argmax(-1).astype(np.uint8)
