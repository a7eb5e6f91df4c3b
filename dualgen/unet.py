"""The U-Net of every mix (paper Table 3): segmentation_models.Unet with a backbone, softmax over the classes,
dice + categorical focal loss, Adam, ReduceLROnPlateau and EarlyStopping on the validation IoU, the best
weights kept. Resumable: the last epoch's weights and the callbacks' state are saved after every epoch.
"""
import json
import math
import os
from pathlib import Path

import numpy as np

import dualgen  # noqa: F401  (environment before TensorFlow / segmentation_models)
import tensorflow as tf
import segmentation_models as sm

from dualgen.errors import DualgenError

MONITOR = "val_iou_score"


class _NoDownload:
    """While active, the Keras weight loader only returns files already in the cache; a missing file is a
    DualgenError that says where to put it (a run never tries the network)."""

    def __enter__(self):
        self._orig = tf.keras.utils.get_file

        def get_file(fname=None, origin=None, cache_subdir="datasets", cache_dir=None, **kwargs):
            base = Path(cache_dir or os.environ.get("KERAS_HOME") or Path.home() / ".keras")
            path = base / cache_subdir / fname
            if not path.exists():
                raise DualgenError(
                    f"ImageNet weights missing: put {fname} (from {origin}) at {path}, or set unet.encoder_weights: null"
                )
            return str(path)

        tf.keras.utils.get_file = get_file
        return self

    def __exit__(self, *exc):
        tf.keras.utils.get_file = self._orig


def build_unet(backbone, encoder_weights, num_classes, input_shape, bn_momentum=None):
    if backbone not in sm.Backbones.models_names():
        raise DualgenError(f"config: unet.backbone: unknown '{backbone}' (e.g. efficientnetb0, efficientnetb3, resnet18, "
                           "mobilenetv2)")
    with _NoDownload():
        model = sm.Unet(backbone, encoder_weights=encoder_weights, classes=num_classes, activation="softmax",
                        input_shape=tuple(input_shape))
    if bn_momentum is not None:  # short CPU runs: let BatchNorm's moving statistics catch up in few steps
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    return model


def preprocess(images, encoder_weights):
    x = np.asarray(images, np.float32) / 255.0
    if encoder_weights and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)  # ImageNet encoders expect 3 channels
    return x


def make_dataset(images, masks, num_classes, batch_size, *, seed, epochs=1, first_epoch=0, shuffle=True,
                 augment=None, encoder_weights=None):
    """A tf.data pipeline with a fixed order per epoch (seeded), one-hot masks and optional augmentation."""
    n = len(images)
    if shuffle:  # every epoch: a seeded permutation padded to whole batches, so a resumed run sees the same order
        per_epoch = math.ceil(n / batch_size) * batch_size
        order = np.concatenate([np.resize(np.random.default_rng([seed, e]).permutation(n), per_epoch)
                                for e in range(first_epoch, epochs)])
    else:
        order = np.arange(n)
    imgs = np.asarray(images, np.uint8)
    msks = np.asarray(masks, np.uint8)

    def load(i):
        image, mask = imgs[i], msks[i]
        if augment is not None:
            image = augment(image=image, mask=mask)["image"]
        return preprocess(image[None], encoder_weights)[0], np.eye(num_classes, dtype=np.float32)[mask]

    channels = 3 if (encoder_weights and imgs.shape[-1] == 1) else imgs.shape[-1]
    ds = tf.data.Dataset.from_tensor_slices(order)
    ds = ds.map(lambda i: tf.numpy_function(load, [i], (tf.float32, tf.float32)))
    h, w = imgs.shape[1:3]
    ds = ds.map(lambda x, y: (tf.ensure_shape(x, (h, w, channels)), tf.ensure_shape(y, (h, w, num_classes))))
    return ds.batch(batch_size).prefetch(2)


class _Resumable:
    """Mixin: restore the callback's counters after Keras resets them in on_train_begin."""

    def __init__(self, state=None, **kwargs):
        super().__init__(**kwargs)
        self._restore = state or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for key, value in self._restore.items():
            setattr(self, key, value)

    def state(self):
        return {k: float(getattr(self, k)) if k == "best" else int(getattr(self, k)) for k in self._restore_keys}


class EarlyStopping(_Resumable, tf.keras.callbacks.EarlyStopping):
    _restore_keys = ("wait", "best")


class ReduceLROnPlateau(_Resumable, tf.keras.callbacks.ReduceLROnPlateau):
    _restore_keys = ("wait", "best", "cooldown_counter")


class _Keeper(tf.keras.callbacks.Callback):
    """Keeps best.weights.h5 (highest validation IoU) and, after every epoch, last.weights.h5 + state.json;
    stops with a DualgenError when the loss becomes NaN/Inf."""

    def __init__(self, out_dir, best, callbacks):
        super().__init__()
        self.out_dir, self.best, self.callbacks = Path(out_dir), best, callbacks
        self.last_finite = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise DualgenError(f"U-Net loss became NaN/Inf at epoch {self.epoch + 1} (last finite loss {self.last_finite}): "
                               "lower unet.learning_rate")
        self.last_finite = loss

    def _save(self, name):
        tmp = self.out_dir / f".{name}.tmp-{os.getpid()}.weights.h5"
        self.model.save_weights(str(tmp))
        os.replace(tmp, self.out_dir / name)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(MONITOR, -np.inf)
        if value > self.best:
            self.best = float(value)
            self._save("best.weights.h5")
        self._save("last.weights.h5")
        state = {"epoch": epoch, "best": self.best, "lr": float(tf.keras.backend.get_value(self.model.optimizer.learning_rate)),
                 "callbacks": {type(c).__name__: c.state() for c in self.callbacks}}
        tmp = self.out_dir / f".state.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.out_dir / "state.json")


def train_unet(images_tr, masks_tr, images_val, masks_val, *, backbone, encoder_weights, num_classes, epochs, batch_size,
               val_batch_size, learning_rate, early_stopping_patience, reduce_lr_patience, seed, out_dir, augment=None,
               bn_momentum=None, log=print):
    """Train; return (model with the best weights, {"resumed_from_epoch": ...})."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = preprocess(images_tr[:1], encoder_weights).shape[1:]
    model = build_unet(backbone, encoder_weights, num_classes, shape, bn_momentum)
    state = json.loads((out_dir / "state.json").read_text()) if (out_dir / "state.json").exists() else None
    first_epoch, lr, best = 0, learning_rate, -np.inf
    if state:
        model.load_weights(str(out_dir / "last.weights.h5"))
        first_epoch, lr, best = state["epoch"] + 1, state["lr"], state["best"]
        log(f"resuming from epoch {first_epoch} (best validation IoU so far {best:.4f})")
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=sm.losses.DiceLoss() + sm.losses.CategoricalFocalLoss(),
                  metrics=[sm.metrics.IOUScore(threshold=0.5)])
    cb_state = (state or {}).get("callbacks", {})
    stop = EarlyStopping(state=cb_state.get("EarlyStopping"), monitor=MONITOR, mode="max",
                         patience=early_stopping_patience)
    reduce = ReduceLROnPlateau(state=cb_state.get("ReduceLROnPlateau"), monitor=MONITOR, mode="max",
                               patience=reduce_lr_patience, factor=0.5, verbose=1)
    keeper = _Keeper(out_dir, best, [stop, reduce])
    csv = tf.keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=first_epoch > 0)
    if first_epoch >= epochs:
        log(f"all {epochs} epochs done already")
    else:
        train = make_dataset(images_tr, masks_tr, num_classes, batch_size, seed=seed, epochs=epochs,
                             first_epoch=first_epoch, augment=augment, encoder_weights=encoder_weights)
        val = make_dataset(images_val, masks_val, num_classes, val_batch_size, seed=seed, shuffle=False,
                           encoder_weights=encoder_weights)
        model.fit(train.repeat(1), validation_data=val, epochs=epochs, initial_epoch=first_epoch,
                  steps_per_epoch=math.ceil(len(images_tr) / batch_size), callbacks=[reduce, stop, csv, keeper],
                  verbose=2)
    if (out_dir / "best.weights.h5").exists():
        model.load_weights(str(out_dir / "best.weights.h5"))
    return model, {"resumed_from_epoch": first_epoch if state else None}


def predict(model, images, batch_size=4, encoder_weights=None):
    x = preprocess(images, encoder_weights)
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    return probs.argmax(-1).astype(np.uint8)
