"""Training the PixelCNN prior: Adam on the negative log-likelihood of the code grids (``train_pixelcnn``), the
validation NLL (``validation_nll``). Both hand a MaskGIT prior (kind "maskgit") to ``maskgit.train_maskgit`` and
``maskgit.validation_nll`` (a masked-token cross-entropy, not an NLL)."""

import contextlib

import numpy as np
import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError
from dualgen.generate.pixelcnn.model import Dropout, check_cond

EVAL_BATCH = 16  # grids per call of validation_nll unless a batch size is given


def nll(logits, grids):
    """Mean negative log-likelihood in nats per grid cell."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(grids, tf.int32), logits))


def _check_grids(model, grids, what):
    grids = np.asarray(grids)
    if grids.ndim != 3 or not np.issubdtype(grids.dtype, np.integer):
        raise DualgenError(
            f"PixelCNN {what}: expected integer code grids (N, H, W), got {grids.dtype} "
            f"{grids.shape}: rerun the encode step"
        )
    if grids.size and (grids.min() < 0 or grids.max() >= model.num_embeddings):
        raise DualgenError(
            f"PixelCNN {what}: codes {grids.min()}..{grids.max()} outside "
            f"0..{model.num_embeddings - 1}: the grids and the model's num_embeddings disagree, "
            "rerun the encode step"
        )
    return grids.astype(np.int32)


def _is_maskgit(model):
    return getattr(model, "kind", None) == "maskgit"


def validation_nll(model, grids, batch_size=EVAL_BATCH, cond=None):
    """Mean NLL (nats per grid cell) over ``grids`` (row i of ``cond`` conditions grid i); NaN when there are none.
    A MaskGIT prior: ``maskgit.validation_nll`` (the masked-token cross-entropy, not an NLL)."""
    if _is_maskgit(model):
        from dualgen.generate.pixelcnn import maskgit

        return maskgit.validation_nll(model, grids, batch_size, cond)
    grids = _check_grids(model, grids, "validation grids")
    cond = check_cond(model, cond, len(grids), "validation cond")
    if len(grids) == 0:
        return float("nan")
    total = 0.0
    for i in range(0, len(grids), batch_size):
        batch = tf.constant(grids[i : i + batch_size])
        total += float(nll(model.grid_logits(batch, tf.constant(cond[i : i + batch_size])), batch)) * len(batch)
    return total / len(grids)


def ema_decay(decay, update):
    """The averaging weight of update ``update`` (1, 2, ...) for ``pixelcnn.ema`` = ``decay``: min(decay, (1 + u) /
    (10 + u)), TensorFlow's ExponentialMovingAverage with num_updates, so the first updates are not drowned by the
    initial weights."""
    return min(float(decay), (1.0 + update) / (10.0 + update))


class WeightAverage:
    """An exponential moving average of ``variables`` (Polyak averaging): ``update(u)`` after update u moves the
    average by ``ema_decay``; ``swapped()`` is a context in which the variables hold the average (validation, the
    best epoch's copy) and after which they hold the trained weights again; ``assign()`` puts the average in for
    good."""

    def __init__(self, variables, decay):
        if not 0 < decay < 1:
            raise DualgenError(f"pixelcnn.ema {decay} must be in (0, 1) (or 0: off): e.g. 0.99")
        self.variables, self.decay = list(variables), float(decay)
        self.average = [tf.Variable(v, trainable=False) for v in self.variables]

    def update(self, update):
        d = ema_decay(self.decay, update)
        for a, v in zip(self.average, self.variables):
            a.assign(d * a + (1.0 - d) * v)

    def assign(self):
        for a, v in zip(self.average, self.variables):
            v.assign(a)

    @contextlib.contextmanager
    def swapped(self):
        trained = [v.numpy() for v in self.variables]
        self.assign()
        try:
            yield
        finally:
            for v, w in zip(self.variables, trained):
                v.assign(w)


class BestEpoch:
    """The epoch of the lowest validation number so far and its weights (a copy, unless it is the last epoch, whose
    weights the model holds anyway); a NaN number (no validation grids) never counts. Shared by the PixelCNN's and
    the MaskGIT's training loops."""

    def __init__(self):
        self.value, self.epoch, self.weights = np.inf, None, None

    def update(self, model, value, epoch, last_epoch):
        if value <= self.value:
            self.value, self.epoch = value, epoch
            self.weights = None if epoch == last_epoch else [v.numpy() for v in model.variables]

    def restore(self, model):
        """Put the kept weights back into ``model``; False when the last epoch was the best (nothing to do)."""
        if self.weights is None:
            return False
        for v, w in zip(model.variables, self.weights):
            v.assign(w)
        return True


def train_pixelcnn(
    model,
    train_grids,
    val_grids,
    *,
    epochs,
    batch_size,
    learning_rate,
    seed,
    log=print,
    train_cond=None,
    val_cond=None,
    dropout=0.0,
    ema=0.0,
):
    """Adam on the NLL, shuffled each epoch with ``seed`` (the cond rows move with their grids). Returns the history
    {"epoch", "train_nll", "val_nll"} (nats per grid cell; train = mean over the epoch's steps).

    With validation grids the model ends with the weights of the epoch of lowest validation NLL (the last such epoch
    on ties), not those of the last epoch: on a few dozen grids the prior overfits within tens of epochs, and an
    overfitted prior samples degenerate grids. Without validation grids: the last epoch.

    A MaskGIT prior is trained by ``maskgit.train_maskgit`` (the same arguments; the history's numbers are its
    masked-token cross-entropies; ``dropout`` must then be 0).

    ``dropout`` > 0: each update drops the blocks' new features at that rate (``model.Dropout``, seeded by ``seed``
    and the update's number); the validation NLL is the network's without dropout.

    ``ema`` > 0 (a decay, e.g. 0.99): an exponential moving average of the weights over the updates
    (``WeightAverage``); the validation NLL, the kept epoch and the model returned are the average's. 0: the weights
    as trained."""
    if not 0 <= dropout < 1:
        raise DualgenError(f"pixelcnn.dropout {dropout} must be in [0, 1): e.g. 0.1")
    if not 0 <= ema < 1:
        raise DualgenError(f"pixelcnn.ema {ema} must be in [0, 1) (0: off): e.g. 0.99")
    if _is_maskgit(model):
        from dualgen.generate.pixelcnn import maskgit

        for name, value in (("dropout", dropout), ("ema", ema)):
            if value:
                raise DualgenError(f"pixelcnn.{name} is for the PixelCNN kinds (plain, gated), not a MaskGIT prior")
        return maskgit.train_maskgit(
            model,
            train_grids,
            val_grids,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            cond=train_cond,
            val_cond=val_cond,
            log=log,
        )
    train = _check_grids(model, train_grids, "training grids")
    val = _check_grids(model, val_grids, "validation grids")
    if len(train) == 0:
        raise DualgenError("PixelCNN: no training grids: check the encode step's train/val split")
    train_cond = check_cond(model, train_cond, len(train), "train_cond")
    val_cond = check_cond(model, val_cond, len(val), "val_cond")
    optimizer = snt.optimizers.Adam(learning_rate)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None], tf.int32),
            tf.TensorSpec([None, model.cond_dim], tf.float32),
            tf.TensorSpec([2], tf.int32),
        ]
    )
    def train_step(batch, cond, drop_seed):
        with tf.GradientTape() as tape:
            loss = nll(model(batch, cond, Dropout(dropout, drop_seed) if dropout else None), batch)
        params = model.trainable_variables
        optimizer.apply(tape.gradient(loss, params), params)
        return loss

    average = WeightAverage(model.trainable_variables, ema) if ema else None
    rng = np.random.default_rng(seed)
    history = {"epoch": [], "train_nll": [], "val_nll": []}
    last_finite = None
    best = BestEpoch()
    update = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(train))
        losses = []
        for step, start in enumerate(range(0, len(train), batch_size), 1):
            rows = order[start : start + batch_size]
            update += 1
            drop_seed = tf.constant([int(seed) % (1 << 31), update], tf.int32)
            loss = float(train_step(tf.constant(train[rows]), tf.constant(train_cond[rows]), drop_seed))
            if not np.isfinite(loss):
                raise DualgenError(
                    f"PixelCNN loss became NaN/Inf at epoch {epoch} step {step} "
                    f"(last finite loss {last_finite}): lower pixelcnn.learning_rate"
                )
            last_finite = loss
            losses.append(loss)
            if average:
                average.update(update)
        history["epoch"].append(epoch)
        history["train_nll"].append(float(np.mean(losses)))
        with average.swapped() if average else contextlib.nullcontext():
            history["val_nll"].append(validation_nll(model, val, batch_size, val_cond))
            best.update(model, history["val_nll"][-1], epoch, epochs)
        log(
            f"epoch {epoch}/{epochs}: NLL {history['train_nll'][-1]:.4f} (train), "
            f"{history['val_nll'][-1]:.4f} (validation{', weight average' if average else ''}) nats per cell"
        )
    if average:
        average.assign()  # the last epoch's average: what BestEpoch holds for it
    if best.restore(model):
        log(f"kept the weights of epoch {best.epoch} (lowest validation NLL {best.value:.4f}), not of epoch {epochs}")
    return history
