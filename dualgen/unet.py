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
- ``train_unet``: dice + categorical focal loss, Adam, ``sm.metrics.IOUScore(threshold=0.5)`` (logged as
  ``iou_score`` / ``val_iou_score``), ReduceLROnPlateau (factor ``LR_FACTOR``) and EarlyStopping on
  ``val_iou_score`` (mode max), the best weights kept in ``out_dir/best.weights.h5`` (written under a temporary
  name, then renamed), ``out_dir/history.csv`` (Keras' CSVLogger plus ``lr`` and ``seconds`` per epoch), a loss
  that becomes NaN/Inf stops the run with a DualgenError.
- Resumable: a commit writes ``best.weights.h5``, ``last.weights.h5`` (with Adam's moments and step count) and,
  last of all, ``last_epoch.json`` (epoch, best score, learning rate, the callbacks' counters). It happens after
  the first epoch ending ``CHECKPOINT_EVERY_S`` (60) s after the previous commit and after the final epoch, so a
  killed run loses about a minute at most, and short CPU epochs do not pay 0.5-1 s of writing each. A second
  call with the same ``out_dir`` continues after the committed epoch ("resuming from epoch N"). The training
  order (a seeded permutation per epoch) and the augmentation (reseeded per sample from seed, epoch, position)
  depend only on (seed, epoch), and Adam's state is restored, so a resumed run computes what an uninterrupted
  one would. When training is over, ``last_epoch.json`` says ``"finished": true`` and ``last.weights.h5`` (3x the
  model's size) is deleted; a later call only loads ``best.weights.h5`` (1x: no optimizer state in it).
- Steps per epoch = ceil(train size / batch); the last batch of an epoch is filled up with images from the
  start of the same epoch's permutation (fixed batch shape: no retracing).
"""
import csv
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

import dualgen  # noqa: F401  (environment before TensorFlow / segmentation_models)
import segmentation_models as sm
import tensorflow as tf

from dualgen import augment as _augment
from dualgen.errors import DualgenError

MONITOR = "val_iou_score"
LR_FACTOR = 0.1  # ReduceLROnPlateau's factor: Keras' default (the paper names none)
STATE = "last_epoch.json"
CHECKPOINT_EVERY_S = 60.0  # commit a resumable state at most this often (a kill loses at most ~this much training)


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

        def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
                     hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, **kwargs):
            candidates = _cache_candidates(fname, cache_subdir, cache_dir)
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise DualgenError(
                    f"ImageNet weights for unet.backbone {backbone} missing: put {fname} (download: {origin}) at "
                    f"{candidates[0]}, or set unet.encoder_weights: null")
            expected = file_hash or md5_hash
            if expected:
                from tf_keras.src.utils.data_utils import validate_file

                algorithm = "md5" if (md5_hash and not file_hash) else hash_algorithm
                if not validate_file(str(found), expected, algorithm=algorithm):
                    raise DualgenError(
                        f"ImageNet weights {found} are corrupt or incomplete (hash differs from {expected}): "
                        f"replace it with a fresh download of {origin}, or set unet.encoder_weights: null")
            return str(found)

        self._utils.get_file = get_file
        return self

    def __exit__(self, *exc):
        self._utils.get_file = self._orig


# ---------------------------------------------------------------------------------------------- model


def build_unet(backbone, encoder_weights, num_classes, input_shape, bn_momentum=None):
    """``sm.Unet`` with a softmax over ``num_classes``; ``input_shape`` (H, W, C), H and W multiples of 32.

    With ``encoder_weights="imagenet"`` a 1-channel ``input_shape`` gives a 3-channel model (``preprocess``
    repeats the channel). ``bn_momentum`` (optional) overrides BatchNormalization's momentum (short CPU runs).
    The backbone name is kept as ``model.dualgen_backbone`` for ``predict``.
    """
    names = backbones()
    if backbone not in names:
        raise DualgenError(f"config: unet.backbone: unknown '{backbone}' (e.g. resnet18, mobilenetv2, efficientnetb0, "
                           f"efficientnetb3; all: {', '.join(names)})")
    if encoder_weights not in (None, "imagenet"):
        raise DualgenError(f"config: unet.encoder_weights: '{encoder_weights}' is neither imagenet nor null")
    h, w, c = tuple(input_shape)
    for size in (h, w):
        if size is not None and int(size) % 32:
            raise DualgenError(f"U-Net input {h}x{w}: height and width must be multiples of 32 (the U-Net halves "
                               "them 5 times): choose a patch size like 64, 128 or 256")
    if c not in (1, 3):
        raise DualgenError(f"U-Net input has {c} channels: images must have 1 (gray) or 3 (RGB)")
    if encoder_weights:
        c = 3
    with _NoDownload(backbone), warnings.catch_warnings():
        # keras_applications' MobileNets: "Weights for input shape (224, 224) will be loaded" (fine: convolutions)
        warnings.filterwarnings("ignore", message="`input_shape` is undefined or non-square")
        model = sm.Unet(backbone, encoder_weights=encoder_weights, classes=int(num_classes), activation="softmax",
                        input_shape=(h, w, c))
    if bn_momentum is not None:  # short CPU runs: let BatchNorm's moving statistics catch up in few steps
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    model.dualgen_backbone = backbone
    return model


def _as_images(images):
    x = np.asarray(images)
    if x.ndim == 3:  # (N, H, W) gray
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DualgenError(f"U-Net images have shape {x.shape}: expected (N, H, W), (N, H, W, 1) or (N, H, W, 3)")
    return x


def preprocess(images, encoder_weights=None, backbone=None):
    """uint8 (N, H, W[, C]) -> float32 network input (see the module docstring)."""
    x = _as_images(images).astype(np.float32)
    if not encoder_weights:
        return x / 255.0
    if backbone is None:
        raise DualgenError("U-Net preprocessing for ImageNet weights needs the backbone name")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)  # ImageNet encoders expect 3 channels
    return np.asarray(sm.get_preprocessing(backbone)(x), dtype=np.float32)


def make_dataset(images, masks, num_classes, batch_size, *, shuffle, seed, augment=None, epochs=1, first_epoch=0,
                 encoder_weights=None, backbone=None):
    """A tf.data pipeline of (float32 images, one-hot float32 masks) batches.

    shuffle=True: epochs ``first_epoch .. epochs-1`` back to back, each a permutation seeded by (seed, epoch),
    ceil(N / batch) full batches per epoch (the last one filled up from the start of the permutation).
    shuffle=False: one pass in order, the last batch possibly smaller (validation). ``augment`` (an
    albumentations Compose, e.g. from ``dualgen.augment.build_augmentation``) runs on the uint8 image through
    ``tf.numpy_function``, reseeded per sample from (seed, epoch, position), so the result depends on nothing
    else (not on thread timing, not on where a resumed run started).
    """
    imgs = _as_images(images).astype(np.uint8, copy=False)
    msks = np.asarray(masks).astype(np.uint8, copy=False)
    n, h, w = imgs.shape[:3]
    batch_size = int(batch_size)
    if shuffle:
        steps = math.ceil(n / batch_size)
        rows = []
        for e in range(first_epoch, epochs):
            order = np.resize(np.random.default_rng([int(seed), e]).permutation(n), steps * batch_size)
            rows.append(np.stack([np.full_like(order, e), np.arange(len(order)), order], 1))
        table = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
    else:
        table = np.stack([np.zeros(n, np.int64), np.arange(n), np.arange(n)], 1)
    channels = 3 if (encoder_weights and imgs.shape[-1] == 1) else imgs.shape[-1]
    eye = np.eye(num_classes, dtype=np.float32)
    reseedable = augment is not None and hasattr(augment, "transforms")

    def load(batch_rows):
        images_out, masks_out = [], []
        for e, pos, i in batch_rows:
            image, mask = imgs[i], msks[i]
            if augment is not None:
                if reseedable:
                    _augment.reseed(augment, (int(seed), int(e), int(pos)))
                out = augment(image=image, mask=mask)
                image, mask = out["image"].reshape(imgs.shape[1:]), out["mask"]
            images_out.append(image)
            masks_out.append(mask)
        x = preprocess(np.stack(images_out), encoder_weights, backbone)
        return x, eye[np.stack(masks_out)]

    ds = tf.data.Dataset.from_tensor_slices(table.astype(np.int64)).batch(batch_size)
    ds = ds.map(lambda r: tf.numpy_function(load, [r], (tf.float32, tf.float32)))
    ds = ds.map(lambda x, y: (tf.ensure_shape(x, (None, h, w, channels)),
                              tf.ensure_shape(y, (None, h, w, num_classes))))
    return ds.prefetch(1)


# ---------------------------------------------------------------------------------------------- callbacks


class _Resumable:
    """Mixin: restore the callback's counters after Keras resets them in on_train_begin."""

    _restore_keys = ()

    def __init__(self, state=None, **kwargs):
        super().__init__(**kwargs)
        self._restore = state or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for key, value in self._restore.items():
            if key == "best" and value is None:
                continue
            setattr(self, key, value)

    def state(self):
        out = {}
        for k in self._restore_keys:
            v = getattr(self, k)
            out[k] = (float(v) if math.isfinite(v) else None) if k == "best" else int(v)
        return out


class _EarlyStopping(_Resumable, tf.keras.callbacks.EarlyStopping):
    _restore_keys = ("wait", "best")


class _ReduceLROnPlateau(_Resumable, tf.keras.callbacks.ReduceLROnPlateau):
    _restore_keys = ("wait", "best", "cooldown_counter")


class _Timer(tf.keras.callbacks.Callback):
    """Seconds per epoch (into the logs, hence history.csv) and the time to the first finished training step."""

    def __init__(self):
        super().__init__()
        self.first_step = None
        self.epochs = []

    def on_train_begin(self, logs=None):
        self._t_train = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._t_epoch = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step is None:
            self.first_step = time.perf_counter() - self._t_train

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t_epoch
        self.epochs.append(seconds)
        if logs is not None:
            logs["seconds"] = round(seconds, 3)


class _StopOnNaN(tf.keras.callbacks.Callback):
    """Like Keras' TerminateOnNaN, but a DualgenError with what to do."""

    def __init__(self):
        super().__init__()
        self.epoch, self.last_finite = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            last = "none" if self.last_finite is None else f"{self.last_finite:.4g}"
            raise DualgenError(f"U-Net loss became NaN/Inf at epoch {self.epoch + 1} (last finite loss {last}): "
                               "lower unet.learning_rate")
        self.last_finite = loss


def _write_atomic(path, write):
    path = Path(path)
    # same ending as the target: tf-keras picks the weights format by it (".weights.h5": Keras 3 style, ".h5": legacy)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class _Keeper(tf.keras.callbacks.Callback):
    """Keeps the best weights (highest validation IoU, in memory) and commits a resumable state: best.weights.h5,
    last.weights.h5 (with the optimizer's state) and, last of all, last_epoch.json. It commits after the first
    epoch that ends ``CHECKPOINT_EVERY_S`` seconds after the previous commit, and after the final epoch (all
    epochs, or stopped early; then without last.weights.h5, which a finished run does not need)."""

    def __init__(self, out_dir, best, best_epoch, resumables, every_s=CHECKPOINT_EVERY_S):
        super().__init__()
        self.out_dir, self.best, self.best_epoch, self.resumables = Path(out_dir), best, best_epoch, resumables
        self.every_s = CHECKPOINT_EVERY_S if every_s is None else float(every_s)
        self.stopped_early = False
        self._best_weights = None  # weights of an improvement not yet on disk

    def on_train_begin(self, logs=None):
        self._last_commit = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get(MONITOR, float("nan")))
        improved = math.isfinite(value) and (self.best is None or value > self.best)
        if improved:
            self.best, self.best_epoch = value, epoch
            self._best_weights = None  # the model's current weights: no copy needed unless we go on without a commit
        self.stopped_early = bool(self.model.stop_training)  # set by EarlyStopping (the only one that stops)
        final = self.stopped_early or epoch + 1 >= self.params.get("epochs", epoch + 1)
        if final or time.perf_counter() - self._last_commit >= self.every_s:
            self._commit(epoch, improved, final)
        elif improved:
            self._best_weights = self.model.get_weights()

    def _commit(self, epoch, improved, final):
        if improved:
            _write_atomic(self.out_dir / "best.weights.h5", lambda p: save_weights(self.model, p))
        elif self._best_weights is not None:  # an earlier, uncommitted improvement
            current = self.model.get_weights()
            self.model.set_weights(self._best_weights)
            try:
                _write_atomic(self.out_dir / "best.weights.h5", lambda p: save_weights(self.model, p))
            finally:
                self.model.set_weights(current)
        self._best_weights = None
        if not final:
            _write_atomic(self.out_dir / "last.weights.h5", lambda p: self.model.save_weights(str(p)))  # + Adam
        state = {"epoch": epoch, "best": self.best, "best_epoch": self.best_epoch,
                 "lr": float(tf.keras.backend.get_value(self.model.optimizer.learning_rate)),
                 "stopped_early": self.stopped_early, "finished": final,
                 "callbacks": {type(c).__name__.lstrip("_"): c.state() for c in self.resumables}}
        _write_atomic(self.out_dir / STATE, lambda p: p.write_text(json.dumps(state, indent=1)))
        self._last_commit = time.perf_counter()


# ---------------------------------------------------------------------------------------------- training


def _check_set(images, masks, num_classes, what):
    x = _as_images(images)
    y = np.asarray(masks)
    if len(x) == 0:
        raise DualgenError(f"U-Net {what} set is empty: the mix needs at least one {what} image")
    if x.dtype != np.uint8:
        raise DualgenError(f"U-Net {what} images are {x.dtype}: expected uint8")
    if y.shape != x.shape[:3]:
        raise DualgenError(f"U-Net {what} masks have shape {y.shape}, the images {x.shape}: one (H, W) mask per image")
    if y.min() < 0 or y.max() >= num_classes:
        raise DualgenError(f"U-Net {what} masks hold class ids {int(y.min())}..{int(y.max())}, outside "
                           f"0..{num_classes - 1}: masks must hold class indices")
    return x, y.astype(np.uint8)


def _read_history(path):
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _truncate_history(path, last_epoch):
    """Drop rows of epochs after ``last_epoch`` (written before a kill, but not committed)."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_epoch]
    if len(keep) != len(rows):
        def write(p):
            with open(p, "w", newline="") as fh:
                csv.writer(fh).writerows(keep)

        _write_atomic(path, write)


def save_weights(model, path):
    """The model's weights without the optimizer's state (tf-keras 2.21 puts a compiled model's Adam moments into
    a ``.weights.h5`` file, tripling its size); ``model.load_weights`` reads it into a fresh, uncompiled model."""
    path = str(path)
    try:
        from tf_keras.src.saving import saving_lib

        store = saving_lib.H5IOStore(path, mode="w")
        try:
            skip = {id(model.optimizer)} if getattr(model, "optimizer", None) is not None else set()
            saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                                   visited_trackables=skip)
        finally:
            store.close()
    except (ImportError, AttributeError, TypeError):  # another tf-keras: its own way, optimizer included
        model.save_weights(path)


def _load_weights(model, path, optimizer=True):
    """load_weights with a one-line error; ``optimizer=False`` leaves a compiled model's optimizer alone (and
    without tf-keras' warning that the file has no optimizer variables)."""
    try:
        if optimizer or getattr(model, "optimizer", None) is None:
            model.load_weights(str(path))
        else:
            from tf_keras.src.saving import saving_lib

            store = saving_lib.H5IOStore(str(path), mode="r")
            try:
                saving_lib._load_state(model, weights_store=store, assets_store=None, inner_path="",
                                       visited_trackables={id(model.optimizer)})
            finally:
                store.close()
    except (OSError, ValueError, KeyError) as err:
        raise DualgenError(f"{path}: cannot load the U-Net weights ({type(err).__name__}): delete {path.parent} and "
                           "train again") from None


def _finish(out_dir):
    """Training is over (all epochs, or stopped early): mark it and drop what only a resume needs."""
    path = out_dir / STATE
    if path.exists():
        state = json.loads(path.read_text())
        if not state.get("finished"):
            state["finished"] = True
            _write_atomic(path, lambda p: p.write_text(json.dumps(state, indent=1)))
    for name in ("last.weights.h5",):
        if (out_dir / name).exists():
            (out_dir / name).unlink()


def train_unet(images_tr, masks_tr, images_val, masks_val, *, backbone, encoder_weights, num_classes, epochs,
               batch_size, val_batch_size, learning_rate, early_stopping_patience, reduce_lr_patience, seed, out_dir,
               augment=None, bn_momentum=None, checkpoint_every_s=None, log=print):
    """Train one U-Net (resuming from ``out_dir`` if an earlier call left epochs there).

    Returns (model with the best weights, info) where info has: resumed_from_epoch (None unless this call resumed),
    epochs_run (in total, with earlier calls), stopped_early, best_epoch (0-based), best_val_iou_score,
    build_seconds (model build + compile), first_step_seconds (fit start to the end of the first training step:
    tracing included), seconds_per_epoch (this call's epochs), history (history.csv as columns of floats).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_classes, epochs = int(num_classes), int(epochs)
    if epochs < 1:
        raise DualgenError(f"config: unet.epochs is {epochs}: train at least 1 epoch")
    x_tr, y_tr = _check_set(images_tr, masks_tr, num_classes, "training")
    x_va, y_va = _check_set(images_val, masks_val, num_classes, "validation")
    if x_tr.shape[1:] != x_va.shape[1:]:
        raise DualgenError(f"U-Net training images {x_tr.shape[1:]} and validation images {x_va.shape[1:]} differ "
                           "in size or channels")

    t0 = time.perf_counter()
    tf.keras.utils.set_random_seed(int(seed))  # the initial weights
    model = build_unet(backbone, encoder_weights, num_classes, x_tr.shape[1:], bn_momentum)
    state_path = out_dir / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    first_epoch, lr, best, best_epoch = 0, float(learning_rate), None, None
    if state:
        first_epoch, lr, best, best_epoch = state["epoch"] + 1, state["lr"], state["best"], state.get("best_epoch")
        _truncate_history(out_dir / "history.csv", state["epoch"])
    done = bool(state) and (state.get("finished") or state.get("stopped_early") or first_epoch >= epochs)
    resume = bool(state) and not done
    if resume:
        shown = "none" if best is None else f"{best:.4f}"
        log(f"resuming from epoch {first_epoch} (epochs 1..{first_epoch} done, best validation IoU so far {shown})")
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss=sm.losses.DiceLoss() + sm.losses.CategoricalFocalLoss(),
                  metrics=[sm.metrics.IOUScore(threshold=0.5)])  # name "iou_score" -> monitor "val_iou_score"
    if resume:  # the model's and Adam's variables (moments, step count) as they were after the last epoch
        model.optimizer.build(model.trainable_variables)
        _load_weights(model, out_dir / "last.weights.h5")
        model.optimizer.learning_rate.assign(lr)
    build_seconds = time.perf_counter() - t0

    cb_state = (state or {}).get("callbacks", {})
    stop = _EarlyStopping(state=cb_state.get("EarlyStopping"), monitor=MONITOR, mode="max",
                          patience=int(early_stopping_patience))  # best weights: from best.weights.h5 below
    reduce = _ReduceLROnPlateau(state=cb_state.get("ReduceLROnPlateau"), monitor=MONITOR, mode="max",
                                patience=int(reduce_lr_patience), factor=LR_FACTOR, verbose=1)
    timer, nan_stop = _Timer(), _StopOnNaN()
    keeper = _Keeper(out_dir, best, best_epoch, [stop, reduce], checkpoint_every_s)
    csv_logger = tf.keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=first_epoch > 0)
    steps = math.ceil(len(x_tr) / int(batch_size))
    stopped_early = bool(state and state.get("stopped_early"))
    if done:
        log(f"{out_dir}: training finished already ({first_epoch} epochs{', stopped early' if stopped_early else ''}); "
            "delete the folder to train again")
    else:
        train = make_dataset(x_tr, y_tr, num_classes, batch_size, shuffle=True, seed=seed, augment=augment,
                             epochs=epochs, first_epoch=first_epoch, encoder_weights=encoder_weights, backbone=backbone)
        val = make_dataset(x_va, y_va, num_classes, val_batch_size, shuffle=False, seed=seed,
                           encoder_weights=encoder_weights, backbone=backbone)
        # order matters: the timer and ReduceLROnPlateau add 'seconds' / 'lr' to the logs before CSVLogger
        # writes them, EarlyStopping sets stop_training before the keeper commits the epoch
        model.fit(train, validation_data=val, epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                  callbacks=[nan_stop, timer, reduce, stop, csv_logger, keeper], verbose=2)
        stopped_early = keeper.stopped_early

    _finish(out_dir)
    if (out_dir / "best.weights.h5").exists():
        _load_weights(model, out_dir / "best.weights.h5", optimizer=False)
    else:  # keep the contract (a best.weights.h5 after training) even then
        log(f"{out_dir}: the validation IoU was never finite: best.weights.h5 gets the last weights")
        _write_atomic(out_dir / "best.weights.h5", lambda p: save_weights(model, p))
    rows = _read_history(out_dir / "history.csv")
    history = {k: [float(r[k]) if r.get(k) not in (None, "") else float("nan") for r in rows]
               for k in (rows[0].keys() if rows else [])}
    info = {"resumed_from_epoch": first_epoch if resume else None, "epochs_run": len(rows),
            "stopped_early": stopped_early, "best_epoch": keeper.best_epoch, "best_val_iou_score": keeper.best,
            "build_seconds": build_seconds, "first_step_seconds": timer.first_step,
            "seconds_per_epoch": timer.epochs, "history": history}
    return model, info


def predict(model, images, batch_size=4, encoder_weights=None, backbone=None):
    """uint8 class maps (N, H, W) for uint8 images (N, H, W[, C]), scaled as in training (``encoder_weights`` as
    trained; ``backbone`` defaults to the one ``build_unet`` recorded on the model)."""
    backbone = backbone or getattr(model, "dualgen_backbone", None)
    x = preprocess(images, encoder_weights, backbone)
    probs = model.predict(x, batch_size=int(batch_size), verbose=0)
    return probs.argmax(-1).astype(np.uint8)
