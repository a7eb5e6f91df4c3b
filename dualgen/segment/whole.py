"""Whole-micrograph inference with trained U-Nets.

The U-Nets are trained on ``patches.size`` square patches; a micrograph is larger (and of any size). Method:

1. Preprocessing: the micrograph goes through ``dualgen.data.patches.prepare_image`` (info band cut, gray or colour,
   ``data.scale``), the function ingest uses, so a model sees the pixels it was trained on.
2. Windows: squares of the patch size at ``window_starts`` in both axes (stride ``size * (1 - overlap)``, the last
   window moved back to end at the edge: every pixel covered, nothing cropped). An image smaller than a window is
   padded to it (reflected, else edge pixels) and the result cropped back. All windows are cut at once (numpy
   indexing) and preprocessed once for all models.
3. Each model runs on the windows in batches (``model(x, training=False)``); with ``tta`` on the four flips of
   each window (identity, left-right, up-down, both), each output flipped back, averaged.
4. Blending (``stitch``): a window's softmax is least reliable near its border (less context), so each window's
   scores are weighted by ``blend_window`` (a 2-D Hann-like bump, > 0 everywhere) normalised per pixel by the total
   weight of the windows covering it: the weights sum to one at every pixel, and a pixel one window covers keeps
   that window's score exactly (overlap 0 = plain tiling).
5. ``out_size``: the scores resized bilinearly back to the micrograph's original resolution (before
   ``data.scale``), so the label map lines up with the file.
6. ``ensemble``: the mean of the models' (e.g. seeds') scores; ``labels``: the argmax; ``area_fractions``: each
   class's share of the pixels.

Memory: the windows' scores are kept until they are stitched: windows x size**2 x classes float32 per model.
"""

import numpy as np
from PIL import Image

from dualgen.core.errors import DualgenError

BLEND_FLOOR = 1e-3  # blend_window's smallest weight (at the border): > 0, so every covered pixel has a weight
FLIPS = ((), (2,), (1,), (1, 2))  # TTA: identity, left-right, up-down, both (axes of an (N, H, W, C) batch)


def window_starts(length, size, overlap):
    """Sorted unique int starts of windows of ``size`` covering 0..length: stride = max(1, round(size * (1 - overlap))),
    starts 0, stride, 2*stride, ... and the last one shifted to length - size so the edge is covered (nothing
    cropped). Requires length >= size. overlap in [0, 1)."""
    if length < size:
        raise ValueError(f"window {size} longer than the side {length}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap {overlap} not in [0, 1)")
    stride = max(1, int(round(size * (1 - overlap))))
    return np.unique(np.append(np.arange(0, length - size + 1, stride), length - size))


def blend_window(size):
    """(size, size) float32 blending weights, strictly positive everywhere, smooth: the outer product of the 1-D
    profile sin(pi * (i + 0.5) / size) ** 2 floored at ``BLEND_FLOOR`` (highest in the middle)."""
    profile = np.maximum(np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2, BLEND_FLOOR)
    return np.outer(profile, profile).astype(np.float32)


def stitch(window_scores, starts_y, starts_x, height, width):
    """(height, width, K) float32: the per-window scores (N, size, size, K), window n placed at
    (starts_y[n], starts_x[n]), blended with per-pixel weights that sum to one at every pixel (``blend_window``
    divided by the total weight there). A pixel one window covers gets exactly that window's score (w / w == 1).
    Pixels no window covers stay 0."""
    n, size, _, k = window_scores.shape
    offsets = np.arange(size)
    rows = np.asarray(starts_y)[:, None, None] + offsets[None, :, None]
    cols = np.asarray(starts_x)[:, None, None] + offsets[None, None, :]
    index = (rows * width + cols).ravel()  # flat pixel index of every window pixel, (N * size * size,)
    weight = np.broadcast_to(blend_window(size).astype(np.float64), (n, size, size)).ravel()
    total = np.bincount(index, weights=weight, minlength=height * width)
    share = weight / total[index]
    scores = window_scores.reshape(-1, k)
    out = np.stack([np.bincount(index, weights=scores[:, c] * share, minlength=height * width) for c in range(k)], -1)
    return out.reshape(height, width, k).astype(np.float32)


def resize_scores(scores, height, width):
    """(h, w, K) float32 -> (height, width, K): bilinear per class (PIL mode 'F'), identity when the size
    matches."""
    scores = np.asarray(scores, np.float32)
    if scores.shape[:2] == (height, width):
        return scores
    planes = [Image.fromarray(np.ascontiguousarray(scores[..., c])) for c in range(scores.shape[2])]
    return np.stack([np.asarray(p.resize((width, height), Image.Resampling.BILINEAR)) for p in planes], -1)


def _pad(image, size, log):
    """The image padded at the bottom/right to at least ``size`` in both axes (reflected where one mirror image
    fills the gap, else edge pixels), with one log line when it had to be."""
    h, w = image.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return image
    mode = "reflect" if ph < h and pw < w else "edge"
    log(f"image {w}x{h} px is smaller than the {size}x{size} px window: padded ({mode}) to {w + pw}x{h + ph} px")
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)


def _windows(image, size, overlap):
    """All windows of the image at once: (uint8 (N, size, size, C), starts_y (N,), starts_x (N,))."""
    ys = window_starts(image.shape[0], size, overlap)
    xs = window_starts(image.shape[1], size, overlap)
    starts_y, starts_x = np.repeat(ys, len(xs)), np.tile(xs, len(ys))
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size), axis=(0, 1))  # (H', W', C, size, size)
    return view[starts_y, starts_x].transpose(0, 2, 3, 1), starts_y, starts_x


def inference(model):
    """``model(x, training=False)`` traced once as a tf.function (kept on the model): 2-3x faster than eager calls
    on a CPU for the hundreds of windows of a micrograph."""
    fn = getattr(model, "_dualgen_inference", None)
    if fn is None:
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        model._dualgen_inference = fn
    return fn


def _run(model, x, batch_size, tta):
    """float32 (N, size, size, K) softmax of one model on preprocessed windows, in batches; with ``tta`` the mean
    over ``FLIPS``, each output flipped back."""
    call, out = inference(model), []
    for i in range(0, len(x), batch_size):
        batch = x[i : i + batch_size]
        if not tta:
            out.append(np.asarray(call(batch), np.float32))
            continue
        flipped = [np.flip(np.asarray(call(np.ascontiguousarray(np.flip(batch, f))), np.float32), f) for f in FLIPS]
        out.append(sum(flipped) / np.float32(len(FLIPS)))
    return np.concatenate(out)


def predict_scores(models, image, *, size, overlap=0.5, preprocess, batch_size=16, tta=False, out_size=None, log=print):
    """Per-model class scores of one micrograph: a list (one per model) of float32 (H, W, K) arrays.

    ``image``: uint8 (h, w, C) already prepared (``patches.prepare_image``). ``models``: Keras models (softmax
    outputs, fully convolutional, trained on ``size`` x ``size`` patches). ``preprocess``: uint8 (N, H, W, C) ->
    float32 network input (``dualgen.segment.unet.preprocessor(spec)``). ``overlap``: share of a window its
    neighbour overlaps, in [0, 1). ``tta``: average over the 4 flips. ``out_size`` (H, W): the scores resized to it
    (the micrograph's original resolution, before data.scale); None: (h, w). See the module docstring."""
    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise DualgenError(f"predict_scores: image must be uint8 (H, W, C), not {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    windows, starts_y, starts_x = _windows(_pad(image, size, log), size, overlap)
    x = np.asarray(preprocess(windows), np.float32)
    height, width = max(h, size), max(w, size)
    results = []
    for model in models:
        channels = model.input_shape[-1]
        if channels is not None and channels != x.shape[-1]:
            raise DualgenError(
                f"the U-Net takes {channels} channel(s) but the image has {x.shape[-1]} after preprocessing: "
                f"prepare it with channels={channels}"
            )
        scores = stitch(_run(model, x, int(batch_size), tta), starts_y, starts_x, height, width)[:h, :w]
        results.append(scores if out_size is None else resize_scores(scores, *out_size))
    return results


def ensemble(scores_list):
    """Mean of per-model scores (float32)."""
    return np.mean(np.stack(scores_list), axis=0, dtype=np.float32)


def labels(scores):
    """argmax over the last axis as uint8."""
    return np.asarray(scores).argmax(-1).astype(np.uint8)


def area_fractions(label_map, num_classes):
    """float64 (num_classes,): each class's share of the pixels of a label map."""
    label_map = np.asarray(label_map)
    return np.bincount(label_map.ravel(), minlength=num_classes)[:num_classes] / label_map.size
