"""The arrays a parity run feeds every loss, generated once and shared by every backend.

Logits are standard normal; probabilities are their softmax over the classes (sigmoid for one
class). Labels are uniform over the classes (0/1 for one class), one-hot unless the run is
sparse. A loss with ``target_kind="distance_maps"`` (the boundary loss) gets signed distance
maps of those labels from :func:`lossfns.signed_distance_maps` (standard normal floats where
that function, SciPy or a spatial axis is missing: the loss is linear in them, so any floats
test the same arithmetic); one with ``target_kind="skeletons"`` their tubed skeletons from
:func:`lossfns.tubed_skeletons` (the labels themselves without scikit-image). A loss with
``logits_only`` (the Lovász hinge) always gets the logits. Every array is stored in the run's
dtype (labels as int64).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .settings import BACKENDS, WORKER_BACKENDS, Loss, Settings

#: Peak bytes per element of ``y_pred`` in the calling process and in each framework worker,
#: rounded up from a measurement (two losses on 2×96³×3 against 2×32³×3: 44 bytes in the
#: calling process, 125 in the torch worker and 126 in the JAX worker): used to refuse a
#: shape that cannot fit before anything is allocated.
HOST_BYTES_PER_ELEMENT = 64
WORKER_BYTES_PER_ELEMENT = 160


class Case(NamedTuple):
    """What one loss is fed: array names (keys of :func:`make_arrays`) and options."""

    target: str  # "labels", "skeletons" or "distance_maps"
    prediction: str  # "probabilities" or "logits"
    options: dict


def case_for(loss: Loss, settings: Settings) -> Case:
    """The inputs of ``loss`` in a run with these settings."""
    options = {} if settings.from_logits is False else {"from_logits": settings.from_logits}
    if loss.required is not None:
        options.update(loss.required(settings.classes))
    logits = loss.logits_only or settings.from_logits is not False
    return Case(loss.target_kind, "logits" if logits else "probabilities", options)


def memory_estimate(settings: Settings, backends=BACKENDS) -> int:
    """Bytes a run on ``backends`` needs at its peak, about (the workers run side by side)."""
    workers = sum(any(b in backends for b in members) for members in WORKER_BACKENDS.values())
    return (HOST_BYTES_PER_ELEMENT + workers * WORKER_BYTES_PER_ELEMENT) * settings.elements


def _softmax(x):
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _distance_maps(labels, settings: Settings, rng):
    import lossfns

    maps_of = getattr(lossfns, "signed_distance_maps", None)
    if maps_of is not None and len(settings.shape) > 1:
        try:
            # One channel is the foreground (label 1): take the last map of two classes.
            maps = maps_of(labels, max(settings.classes, 2))
            return maps[..., -settings.classes:]
        except ImportError:  # SciPy missing
            pass
    return rng.normal(size=tuple(settings.shape) + (settings.classes,))


def _skeletons(labels, settings: Settings):
    """The labels' tubed skeletons (:func:`lossfns.tubed_skeletons`), or the labels where
    scikit-image or two or three spatial axes are missing: any label map tests the same sums."""
    import lossfns

    if len(settings.shape) in (3, 4):  # batch plus 2 or 3 spatial axes
        try:
            return lossfns.tubed_skeletons(labels)
        except ImportError:  # scikit-image missing
            pass
    return labels


def _label_map(indices, settings: Settings):
    """Class indices as the run lays labels out: sparse, a 0/1 map for one class, or one-hot."""
    if settings.sparse:
        return indices.astype(np.int64)
    if settings.classes == 1:
        return indices[..., None].astype(settings.dtype)
    return np.eye(settings.classes, dtype=settings.dtype)[indices]


def make_arrays(settings: Settings, cases) -> dict:
    """``{name: array}`` for every name the ``cases`` use, in the run's dtype."""
    rng = np.random.default_rng(settings.seed)
    shape = tuple(settings.shape) + (settings.classes,)
    logits = rng.normal(size=shape)
    labels = rng.integers(0, max(settings.classes, 2), size=tuple(settings.shape))
    used = {name for case in cases for name in (case.target, case.prediction)}
    arrays = {"logits": logits.astype(settings.dtype)}
    if "probabilities" in used:
        probs = 1.0 / (1.0 + np.exp(-logits)) if settings.classes == 1 else _softmax(logits)
        arrays["probabilities"] = probs.astype(settings.dtype)
    arrays["labels"] = _label_map(labels, settings)
    if "skeletons" in used:
        arrays["skeletons"] = _label_map(np.asarray(_skeletons(labels, settings)), settings)
    if "distance_maps" in used:
        arrays["distance_maps"] = np.asarray(_distance_maps(labels, settings, rng)).astype(settings.dtype)
    return {name: arrays[name] for name in sorted(used)}


def gradient_coordinates(settings: Settings, shape):
    """Indices (a tuple of index arrays) of the coordinates checked by finite differences."""
    size = math.prod(shape)
    rng = np.random.default_rng(settings.seed + 1)
    count = min(settings.fd_points, size)
    flat = np.sort(rng.choice(size, count, replace=False)) if count < size else np.arange(size)
    return np.unravel_index(flat, shape)
