"""Training of one U-Net (paper Table 3): dice + categorical focal loss, Adam, ``sm.metrics.IOUScore(threshold=0.5)``
(logged as ``iou_score`` / ``val_iou_score``), ReduceLROnPlateau (factor ``LR_FACTOR``) on the validation IoU, the
best weights by validation IoU kept in ``out_dir/best.weights.h5``, ``out_dir/history.csv`` (one row per
validation: ``epoch`` = validation period, ``updates`` so far, losses, IoUs, ``lr``, ``seconds``).

Budgets (``dualgen.segment.unet_data``): ``updates`` - every mix gets the same number of optimizer updates, validated
every K updates (no early stopping: equal budgets); ``epochs`` - up to N epochs with EarlyStopping (the paper's
way). The pretrain arm spends the first ``pretrain_share`` of the periods on the synthetic images, then the rest
on the real ones; the best checkpoint is chosen over the whole run.

Options for rare classes and the schedule (config ``unet``; their defaults are the behaviour above): ``class_weights``
(``auto``: from the training masks' pixel shares, ``unet_data.class_weights``; or {class: weight}) weights both
losses per class (dice: segmentation_models' class_weights; focal: its alpha, 0.25 x the weight), ``sampling:
balanced`` draws the batches so that each class is shown about equally often (``unet_data.batch_plan``), and
``lr_schedule: cosine`` replaces ReduceLROnPlateau by a linear warm-up over ``warmup_share`` of the run's updates and
a cosine to zero at its last update (``lr_at``; the same for every mix of one budget).

Resumable: a commit writes ``best.weights.h5``, ``last.weights.h5`` (with Adam's moments and step count) and,
last of all, ``last_epoch.json`` (period, best score, learning rate, the callbacks' counters), after the first
period ending ``checkpoint_every_s`` seconds (config ``unet.checkpoint_every_s``) after the previous commit and after
the final one. A second call with
the same ``out_dir`` continues after the committed period. The batches depend only on (seed, batch index) and
Adam's state is restored, so a resumed run computes what an uninterrupted one would. When training is over,
``last_epoch.json`` says ``"finished": true`` and ``last.weights.h5`` is deleted.
"""

import csv
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import segmentation_models as sm
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow / segmentation_models)
from dualgen.core import precision
from dualgen.core.artifacts import atomic_path
from dualgen.core.errors import DualgenError
from dualgen.segment import unet, unet_data

MONITOR = "val_iou_score"
LR_FACTOR = 0.1  # ReduceLROnPlateau's factor: Keras' default (the paper names none)
FOCAL_ALPHA = 0.25  # segmentation_models' CategoricalFocalLoss default: the focal term's weight of every class
STATE = "last_epoch.json"


def lr_at(step, total, base_lr, warmup_share):
    """The learning rate of the update that follows ``step`` updates, in a run of ``total``: linear from 0 to
    ``base_lr`` over the first ``warmup_share * total`` updates, then a cosine from ``base_lr`` to 0 at ``total``
    (0 from there on)."""
    step, total, base_lr = float(step), float(total), float(base_lr)
    warm = float(warmup_share) * total
    if step >= total:
        return 0.0
    if step < warm:
        return base_lr * step / warm
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / (total - warm)))


# ---------------------------------------------------------------------------------------------- optimizer


class FusedAdam(tf.keras.optimizers.Adam):
    """Keras' Adam with each dense update in one kernel (``ResourceApplyAdam``, the fused op Keras' legacy Adam
    uses) instead of about ten element-wise ops per variable: the same formula (bias-corrected step size, epsilon
    added to sqrt(v)), rounded in another order: fewer ops to run and to trace. Variables, saving, learning-rate
    schedule and state reset are Keras' Adam's."""

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad or self.adaptive_epsilon:
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        key = self._index_dict[self._var_key(variable)]
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[key].handle,
            v=self._velocities[key].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(self.learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=gradient,
            use_locking=False,
        )


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
    """Seconds per period (into the logs, hence history.csv), the time to the first finished update (tracing
    included), and the seconds spent inside optimizer updates after the first (for the study's overhead figure)."""

    def __init__(self):
        super().__init__()
        self.first_step = None
        self.epochs = []
        self.update_seconds = 0.0

    def on_train_begin(self, logs=None):
        self._t_train = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._t_epoch = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._t_batch = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.first_step is None:
            self.first_step = now - self._t_train
        else:
            self.update_seconds += now - self._t_batch

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
            raise DualgenError(
                f"U-Net loss became NaN/Inf at epoch {self.epoch + 1} (last finite loss {last}): "
                "lower unet.learning_rate"
            )
        self.last_finite = loss


def _write_atomic(path, write):
    """``write(tmp)`` then rename: the temporary name keeps the target's ending (tf-keras picks the weights format
    by it)."""
    with atomic_path(path) as tmp:
        write(tmp)


class _Cosine(tf.keras.callbacks.Callback):
    """``lr_schedule: cosine``: sets the learning rate before each update to ``lr_at(updates so far)``, counted from
    (period, batch) as Keras numbers them, so a resumed run continues the schedule where it stopped; logs the
    period's last update's learning rate as ``lr`` (as ReduceLROnPlateau logs the period's)."""

    def __init__(self, steps, total, base_lr, warmup_share):
        super().__init__()
        self.steps, self.total, self.base_lr, self.warmup_share = int(steps), int(total), base_lr, warmup_share
        self.epoch = 0

    def _lr(self, step):
        return lr_at(step, self.total, self.base_lr, self.warmup_share)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self._lr(self.epoch * self.steps + batch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))


class _Updates(tf.keras.callbacks.Callback):
    """Adds ``updates`` (optimizer updates so far) to each period's logs, for history.csv and the figures."""

    def __init__(self, steps):
        super().__init__()
        self.steps = int(steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["updates"] = (epoch + 1) * self.steps


class _Keeper(tf.keras.callbacks.Callback):
    """Keeps the best weights (highest validation IoU, in memory) and commits a resumable state: best.weights.h5,
    last.weights.h5 (with the optimizer's state) and, last of all, last_epoch.json. It commits after the first
    epoch that ends ``every_s`` seconds after the previous commit, and after the final epoch (all epochs, or
    stopped early; then without last.weights.h5, which a finished run does not need)."""

    def __init__(self, out_dir, best, best_epoch, resumables, every_s):
        super().__init__()
        self.out_dir, self.best, self.best_epoch, self.resumables = Path(out_dir), best, best_epoch, resumables
        self.every_s = float(every_s)
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
            _write_atomic(self.out_dir / "best.weights.h5", lambda p: unet.save_weights(self.model, p))
        elif self._best_weights is not None:  # an earlier, uncommitted improvement
            current = self.model.get_weights()
            self.model.set_weights(self._best_weights)
            try:
                _write_atomic(self.out_dir / "best.weights.h5", lambda p: unet.save_weights(self.model, p))
            finally:
                self.model.set_weights(current)
        self._best_weights = None
        if not final:
            _write_atomic(self.out_dir / "last.weights.h5", lambda p: self.model.save_weights(str(p)))  # + Adam
        state = {
            "epoch": epoch,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "lr": float(tf.keras.backend.get_value(self.model.optimizer.learning_rate)),
            "stopped_early": self.stopped_early,
            "finished": final,
            "callbacks": {type(c).__name__.lstrip("_"): c.state() for c in self.resumables},
        }
        _write_atomic(self.out_dir / STATE, lambda p: p.write_text(json.dumps(state, indent=1)))
        self._last_commit = time.perf_counter()


# ---------------------------------------------------------------------------------------------- training


def _check_set(images, masks, num_classes, what):
    x = unet_data.as_images(images)
    y = np.asarray(masks)
    if len(x) == 0:
        raise DualgenError(f"U-Net {what} set is empty: the mix needs at least one {what} image")
    if x.dtype != np.uint8:
        raise DualgenError(f"U-Net {what} images are {x.dtype}: expected uint8")
    if y.shape != x.shape[:3]:
        raise DualgenError(f"U-Net {what} masks have shape {y.shape}, the images {x.shape}: one (H, W) mask per image")
    if y.min() < 0 or y.max() >= num_classes:
        raise DualgenError(
            f"U-Net {what} masks hold class ids {int(y.min())}..{int(y.max())}, outside "
            f"0..{num_classes - 1}: masks must hold class indices"
        )
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


def _finish(out_dir):
    """Training is over (all epochs, or stopped early): mark it and drop what only a resume needs."""
    path = out_dir / STATE
    if path.exists():
        state = json.loads(path.read_text())
        if not state["finished"]:
            state["finished"] = True
            _write_atomic(path, lambda p: p.write_text(json.dumps(state, indent=1)))
    for name in ("last.weights.h5",):
        if (out_dir / name).exists():
            (out_dir / name).unlink()


def reusable(spec):
    """Whether ``train_unet(reuse=model)`` can train a model of this spec again: not under float16 mixed precision
    (its loss scale is optimizer state that does not start at zero; bfloat16 has none)."""
    return precision.mode(spec["mixed_precision"]) != "float16"


def unet_loss(class_weights=None):
    """Dice + categorical focal loss (paper Table 3); ``class_weights`` (one per class): the dice loss's
    class_weights and the focal loss's per-class alpha (``FOCAL_ALPHA`` x weight). None: both unweighted."""
    if class_weights is None:
        return sm.losses.DiceLoss() + sm.losses.CategoricalFocalLoss()
    w = np.asarray(class_weights, np.float32)
    return sm.losses.DiceLoss(class_weights=w) + sm.losses.CategoricalFocalLoss(alpha=np.float32(FOCAL_ALPHA) * w)


def compile_unet(model, learning_rate, mixed_precision, class_weights=None):
    """Compile ``model`` as every U-Net training does (paper Table 3): ``FusedAdam`` (wrapped in a
    LossScaleOptimizer under float16 mixed precision), dice + categorical focal loss (``unet_loss``, weighted per
    class by ``class_weights`` unless None), IOUScore(threshold=0.5), named "iou_score" (so the monitor is
    "val_iou_score")."""
    model.compile(
        optimizer=precision.loss_scale_optimizer(FusedAdam(learning_rate), mixed_precision),
        loss=unet_loss(class_weights),
        metrics=[sm.metrics.IOUScore(threshold=0.5)],
    )
    model._dualgen_class_weights = None if class_weights is None else [float(v) for v in class_weights]
    return model


def train_unet(
    images_tr,
    masks_tr,
    images_val,
    masks_val,
    *,
    spec,
    budget,
    batch_size,
    val_batch_size,
    learning_rate,
    reduce_lr_patience,
    seed,
    out_dir,
    updates,
    validate_every,
    epochs,
    early_stopping_patience,
    pretrain_share,
    checkpoint_every_s,
    pretrain=None,
    augment=None,
    reuse=None,
    class_weights=None,
    class_weight_cap=None,
    class_names=None,
    sampling="uniform",
    lr_schedule="plateau",
    warmup_share=None,
    stop_patience=None,
    log=print,
):
    """Train one U-Net (resuming from ``out_dir`` if an earlier call left periods there).

    ``spec``: the model (``unet.build_unet``'s keywords, as ``unet.make_spec`` makes them). The budget's settings
    (``updates`` and ``validate_every``, or ``epochs`` and ``early_stopping_patience``; the other budget's are
    None) and ``pretrain_share`` are config ``unet``'s; ``checkpoint_every_s``: seconds between resumable
    commits. ``pretrain``: indices of the training images used first (the synthetic ones of the pretrain arm).
    Config ``unet``'s rare-class and schedule options (the defaults here are the unweighted, uniform, plateau
    training): ``class_weights`` None, ``auto`` (capped at ``class_weight_cap``) or {class name: weight} (names:
    ``class_names``), from the training masks' pixel shares (``unet_data.class_weights``); ``sampling`` uniform or
    balanced; ``lr_schedule`` plateau or cosine (warm-up over ``warmup_share`` of the run's updates).
    ``stop_patience``: under the updates budget, stop after this many validations without a better validation IoU
    (the budget calibration: its curves need only reach their plateau); None: run every update.
    Returns (model with the best weights, result) where result has: budget, periods, steps_per_period, updates (run
    in total), resumed_from_period (None unless this call resumed), stopped_early, best_period
    (0-based), best_updates, best_val_iou_score, build_seconds, first_step_seconds (fit start to the end of the
    first update: tracing included), update_seconds (inside the later updates), seconds_per_period, history
    (history.csv as columns of floats), class_shares (the training masks' pixel shares), class_weights (the loss's
    weights, None: unweighted), sampling, lr_schedule.

    ``reuse``: a model this function returned earlier in this process, for the same spec, batch sizes and image
    size (the seeds of one mix): it is trained again from this seed's initial weights with a fresh Adam state, so
    the result is the one a new process computes, without building and tracing the train and validation functions
    again (``reusable`` tells whether a model can be reused for a spec).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_classes = int(spec["num_classes"])
    x_tr, y_tr = _check_set(images_tr, masks_tr, num_classes, "training")
    x_va, y_va = _check_set(images_val, masks_val, num_classes, "validation")
    if x_tr.shape[1:] != x_va.shape[1:]:
        raise DualgenError(
            f"U-Net training images {x_tr.shape[1:]} and validation images {x_va.shape[1:]} differ in size or channels"
        )
    n_first = len(x_tr) - len(pretrain) if pretrain is not None and len(pretrain) else len(x_tr)
    periods, steps = unet_data.periods_and_steps(
        budget, n_first, batch_size, updates=updates, validate_every=validate_every, epochs=epochs
    )
    pre_periods = int(round(periods * float(pretrain_share))) if pretrain is not None and len(pretrain) else 0
    if lr_schedule not in ("plateau", "cosine"):
        raise DualgenError(f"config: unet.lr_schedule: unknown '{lr_schedule}' (plateau or cosine)")
    if lr_schedule == "cosine" and warmup_share is None:
        raise ValueError("train_unet: lr_schedule cosine needs warmup_share")
    if class_weights == "auto" and class_weight_cap is None:
        raise ValueError("train_unet: class_weights auto needs class_weight_cap")
    shares = unet_data.pixel_shares(y_tr, num_classes)
    weights = unet_data.class_weights(shares, class_weights, class_weight_cap, class_names)
    if weights is not None:
        log(
            "class weights: "
            + ", ".join(f"{k}: {w:.3g} (share {p:.3g})" for k, (w, p) in enumerate(zip(weights, shares)))
        )

    mixed = spec["mixed_precision"]  # float16 gradients: dynamic loss scaling (dualgen.core.precision)
    precision.check(log, "unet.mixed_precision", mixed)
    t0 = time.perf_counter()
    tf.keras.utils.set_random_seed(int(seed))  # the initial weights
    model = unet.build_unet(**spec)
    if reuse is not None and not reusable(spec):
        raise ValueError("train_unet: reuse is for models without mixed precision (unet_train.reusable)")
    if reuse is not None and getattr(reuse, "_dualgen_class_weights", None) != weights:
        raise ValueError("train_unet: reuse is for a model compiled with the same class weights")
    if reuse is not None:  # the traced model, from this seed's initial weights
        reuse.set_weights(model.get_weights())
        model = reuse
    state_path = out_dir / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    first, lr, best, best_period = 0, float(learning_rate), None, None
    if state:
        first, lr, best, best_period = state["epoch"] + 1, state["lr"], state["best"], state["best_epoch"]
        _truncate_history(out_dir / "history.csv", state["epoch"])
    done = bool(state) and (state["finished"] or state["stopped_early"] or first >= periods)
    resume = bool(state) and not done
    if resume:
        shown = "none" if best is None else f"{best:.4f}"
        log(f"resuming from period {first} ({first * steps} updates done, best validation IoU so far {shown})")
    if reuse is None:
        compile_unet(model, lr, mixed, weights)
    else:  # a fresh Adam: moments and step count zero (compiling again would trace again)
        for var in model.optimizer.variables:
            var.assign(tf.zeros_like(var))
        model.optimizer.learning_rate.assign(lr)
    if resume:  # the model's and Adam's variables (moments, step count) as they were after the last period
        model.optimizer.build(model.trainable_variables)
        unet.load_weights(model, out_dir / "last.weights.h5")
        model.optimizer.learning_rate.assign(lr)
    build_seconds = time.perf_counter() - t0

    cb_state = state["callbacks"] if state else {}
    if lr_schedule == "plateau":
        resumables = [
            _ReduceLROnPlateau(
                state=cb_state.get("ReduceLROnPlateau"),
                monitor=MONITOR,
                mode="max",
                patience=int(reduce_lr_patience),
                factor=LR_FACTOR,
                verbose=1,
            )
        ]
        schedule = []
    else:  # the same schedule for every mix of the budget: tied to the run's updates, not to the validation curve
        resumables, schedule = [], [_Cosine(steps, periods * steps, float(learning_rate), float(warmup_share))]
    if budget == "epochs" or stop_patience:  # the study's equal budgets (updates) never stop early
        patience = int(early_stopping_patience if budget == "epochs" else stop_patience)
        resumables.append(
            _EarlyStopping(state=cb_state.get("EarlyStopping"), monitor=MONITOR, mode="max", patience=patience)
        )
    timer, nan_stop = _Timer(), _StopOnNaN()
    keeper = _Keeper(out_dir, best, best_period, resumables, checkpoint_every_s)
    csv_logger = tf.keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=first > 0)
    stopped_early = bool(state and state["stopped_early"])
    if done:
        log(
            f"{out_dir}: training finished already ({first} periods{', stopped early' if stopped_early else ''}); "
            "delete the folder to train again"
        )
    else:
        preprocess = unet.preprocessor(spec)
        plan = unet_data.batch_plan(
            len(x_tr),
            batch_size,
            periods,
            steps,
            seed,
            first_period=first,
            pretrain=pretrain,
            pretrain_periods=pre_periods,
            epoch_mode=budget == "epochs",
            sampling=sampling,
            presence=unet_data.class_presence(y_tr, num_classes) if sampling == "balanced" else None,
        )
        train = unet_data.make_dataset(
            x_tr, y_tr, num_classes, batch_size, plan=plan, seed=seed, augment=augment, preprocess=preprocess
        )
        val = unet_data.make_dataset(x_va, y_va, num_classes, val_batch_size, preprocess=preprocess)
        # order matters: the timer, _Updates and ReduceLROnPlateau (or _Cosine) add 'seconds' / 'updates' / 'lr' to
        # the logs before CSVLogger writes them, EarlyStopping sets stop_training before the keeper commits the period
        model.fit(
            train,
            validation_data=val,
            epochs=periods,
            initial_epoch=first,
            steps_per_epoch=steps,
            callbacks=[nan_stop, timer, _Updates(steps), *schedule, *resumables, csv_logger, keeper],
            verbose=2,
        )
        stopped_early = keeper.stopped_early

    _finish(out_dir)
    if (out_dir / "best.weights.h5").exists():
        unet.load_weights(model, out_dir / "best.weights.h5", optimizer=False)
    else:  # keep the contract (a best.weights.h5 after training) even then
        log(f"{out_dir}: the validation IoU was never finite: best.weights.h5 gets the last weights")
        _write_atomic(out_dir / "best.weights.h5", lambda p: unet.save_weights(model, p))
    rows = _read_history(out_dir / "history.csv")
    history = {
        k: [float(r[k]) if r.get(k) not in (None, "") else float("nan") for r in rows]
        for k in (rows[0].keys() if rows else [])
    }
    best_period = keeper.best_epoch
    result = {
        "budget": budget,
        "periods": periods,
        "steps_per_period": steps,
        "pretrain_periods": pre_periods,
        "updates": len(rows) * steps,
        "resumed_from_period": first if resume else None,
        "stopped_early": stopped_early,
        "best_period": best_period,
        "best_updates": None if best_period is None else (best_period + 1) * steps,
        "best_val_iou_score": keeper.best,
        "build_seconds": build_seconds,
        "first_step_seconds": timer.first_step,
        "update_seconds": timer.update_seconds,
        "seconds_per_period": timer.epochs,
        "history": history,
        "class_shares": [float(v) for v in shares],
        "class_weights": weights,
        "sampling": sampling,
        "lr_schedule": lr_schedule,
    }
    return model, result


def train_kwargs(u, class_names):
    """``train_unet``'s keywords from config ``unet`` (a step's settings): the budget, batches, optimiser, schedule
    and rare-class options, the same for the study's trainings and the budget calibration."""
    keys = (
        "budget",
        "updates",
        "validate_every",
        "epochs",
        "early_stopping_patience",
        "batch_size",
        "val_batch_size",
        "learning_rate",
        "reduce_lr_patience",
        "pretrain_share",
        "class_weights",
        "class_weight_cap",
        "sampling",
        "lr_schedule",
        "warmup_share",
    )
    return {k: u[k] for k in keys} | {"class_names": list(class_names)}


def train_seeds(
    data, spec, settings, seeds, work, checkpoint_every_s, augment_of=None, pretrain=None, extra=None, log=print
):
    """Train one U-Net per seed in this process (one TensorFlow start; the model is built and traced once and
    trained again from each seed's own initial weights where ``reusable``). ``data``: (images_tr, masks_tr,
    images_val, masks_val); ``settings``: the step's settings (config ``unet`` under "unet", the classes, ...), of
    which each seed's resumable work folder (``work``/seed<k>) records the settings of that seed alone;
    ``augment_of(seed)``: the seed's augmentation or None; ``extra``: more ``train_unet`` keywords. Yields (seed,
    settings of that seed, model, result, work folder, reused) per seed, in order; the work folders are removed
    once the caller has taken the last seed's result."""
    from dualgen.generate.common import resume_dir
    from dualgen.segment.evaluation import seed_dir

    kwargs = train_kwargs(settings["unet"], [c["name"] for c in settings["classes"]]) | (extra or {})
    model = None
    for seed in seeds:
        one = {k: v for k, v in settings.items() if k != "seeds"} | {"seed": seed}  # what this training depends on
        folder = resume_dir(seed_dir(work, seed), one)
        reuse = model if model is not None and reusable(spec) else None
        model, result = train_unet(
            *data,
            spec=spec,
            seed=seed,
            out_dir=str(folder),
            augment=augment_of(seed) if augment_of else None,
            pretrain=pretrain,
            reuse=reuse,
            checkpoint_every_s=checkpoint_every_s,
            log=log,
            **kwargs,
        )
        yield seed, one, model, result, folder, reuse is not None
    for seed in seeds:  # the checkpoints are no longer needed once the caller has taken every seed's result
        shutil.rmtree(seed_dir(work, seed), ignore_errors=True)


RESULT_META = (
    "budget",
    "periods",
    "steps_per_period",
    "pretrain_periods",
    "updates",
    "resumed_from_period",
    "stopped_early",
    "best_period",
    "best_updates",
    "best_val_iou_score",
    "build_seconds",
    "first_step_seconds",
    "update_seconds",
    "class_shares",
    "class_weights",
)  # of train_unet's result: into each training's meta.json


def result_meta(result):
    """What a training's meta.json records of ``train_unet``'s result (``RESULT_META``, and the training seconds)."""
    return {k: result[k] for k in RESULT_META} | {"train_seconds": float(sum(result["seconds_per_period"]))}
