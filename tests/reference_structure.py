"""Float64 NumPy references for the structure-aware losses (SPEC §16-§18).

Written from the SPEC's formulas, independently of ``lossfns`` and on purpose in the
plainest form: the Lovász losses leave masked elements out by boolean selection and walk
the sorted elements in a Python loop; the soft morphology visits every element and its
neighbours by index; the signed distance maps compare every pair of elements. Inputs are
small, so clarity wins over speed. Input preparation (class axis last, one-hot, softmax,
mask, ``ignore_index``) is :func:`reference_region.prepare_reference`.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from conftest import BACKENDS
from reference_region import prepare_reference

#: float32 runs on these; every library runs every case in float64.
FLOAT32_BACKENDS = ("numpy", "torch")


def backend_cases(cases):
    """``(backend, case, dtype)`` parameters: every case in float64 on the five array
    libraries, and in float32 on :data:`FLOAT32_BACKENDS` (JAX compiles every op anew per
    dtype and shape, which is where the time of these tests went)."""
    return ([pytest.param(b, c, np.float64, id=f"{b}-{c}-float64") for b in BACKENDS for c in cases]
            + [pytest.param(b, c, np.float32, id=f"{b}-{c}-float32") for b in FLOAT32_BACKENDS for c in cases])


def kept_classes(num_classes, include_background, background_index):
    """All classes, or all but the background; a single channel is always kept."""
    if include_background or num_classes == 1:
        return list(range(num_classes))
    return [c for c in range(num_classes) if c != background_index % num_classes]


def _sets(*arrays, batch):
    """Per-sample slices, or the whole batch as one set."""
    if batch:
        return [arrays]
    return [tuple(a[b] for a in arrays) for b in range(arrays[0].shape[0])]


def call_loss(xp, fn, y_true, y_pred, mask, dtype=np.float64, **options):
    """``fn`` on backend ``xp`` (a conftest ``Backend``), float inputs in ``dtype``, as NumPy.

    JAX runs the call under one ``jax.jit``: eager JAX compiles every primitive for every
    new shape, several times slower for the many small operations of these losses.
    """
    def convert(a):
        return None if a is None else xp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)

    if xp.name == "jax":
        import jax

        fn, options = jax.jit(functools.partial(fn, **options)), {}
    return xp.to_numpy(fn(convert(y_true), convert(y_pred), mask=convert(mask), **options))


# --- Lovász (SPEC §16) ------------------------------------------------------------------------


def lovasz_set_reference(errors, labels):
    """``Σ_k e_π(k)·Δ_k`` on one set of elements, step by step along the sorted order."""
    errors, labels = [float(e) for e in errors], [float(g) for g in labels]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])  # Python's sort is stable
    total = sum(labels)
    loss, previous, hits, misses = 0.0, 0.0, 0.0, 0.0
    for i in order:
        hits += labels[i]
        misses += 1.0 - labels[i]
        denominator = total + misses
        jaccard = 0.0 if denominator == 0 else 1.0 - (total - hits) / denominator
        loss += errors[i] * (jaccard - previous)
        previous = jaccard
    return loss, total


def lovasz_softmax_reference(y_true, y_pred, *, classes="present", include_background=True,
                             background_index=0, class_axis=-1, from_logits=False, mask=None,
                             ignore_index=None, batch=False):
    y, p, m = prepare_reference(y_true, y_pred, class_axis=class_axis, from_logits=from_logits,
                                mask=mask, ignore_index=ignore_index)
    kept = kept_classes(p.shape[-1], include_background, background_index)
    results = []
    for ys, ps, ms in _sets(y, p, m, batch=batch):
        chosen = ms != 0  # a left-out element is removed, not zeroed
        losses = []
        for c in kept:
            loss, total = lovasz_set_reference(np.abs(ys[..., c] - ps[..., c])[chosen], ys[..., c][chosen])
            if classes == "all" or total > 0:
                losses.append(loss)
        results.append(float(np.mean(losses)) if losses else 0.0)
    return np.array(results[0] if batch else results)


def lovasz_hinge_reference(y_true, y_pred, *, class_axis=-1, mask=None, ignore_index=None, batch=False):
    y, z, m = prepare_reference(y_true, y_pred, class_axis=class_axis, from_logits=False,
                                mask=mask, ignore_index=ignore_index)
    results = []
    for ys, zs, ms in _sets(y, z, m, batch=batch):
        chosen = ms != 0
        losses = []
        for c in range(zs.shape[-1]):
            errors = 1.0 - zs[..., c][chosen] * (2.0 * ys[..., c][chosen] - 1.0)
            labels = ys[..., c][chosen]
            order = sorted(range(len(errors)), key=lambda i: -errors[i])
            # Sort by e, then apply the relu to the sorted errors: the SPEC's order of steps.
            loss, _ = lovasz_set_reference([max(errors[i], 0.0) for i in order], [labels[i] for i in order])
            losses.append(loss)
        results.append(float(np.mean(losses)))
    return np.array(results[0] if batch else results)


# --- Boundary loss (SPEC §17) -----------------------------------------------------------------


def signed_distance_reference(labels, num_classes, spacing=None):
    """``[batch, ..., C]`` maps by comparing every element with every other one."""
    labels = np.asarray(labels)
    spatial = labels.shape[1:]
    spacing = np.ones(len(spatial)) if spacing is None else np.broadcast_to(np.asarray(spacing, float), (len(spatial),))
    points = list(np.ndindex(*spatial))
    maps = np.zeros(labels.shape + (num_classes,))
    for b in range(labels.shape[0]):
        for c in range(num_classes):
            inside = {q for q in points if labels[(b,) + q] == c}
            if not inside or len(inside) == len(points):
                continue  # no boundary: 0
            outside = [q for q in points if q not in inside]
            for q in points:
                others = outside if q in inside else inside
                nearest = min(math.sqrt(sum(((a - o) * s) ** 2 for a, o, s in zip(q, r, spacing))) for r in others)
                maps[(b,) + q + (c,)] = -(nearest - 1.0) if q in inside else nearest
    return maps


def boundary_reference(distance_maps, y_pred, *, include_background=False, background_index=0,
                       class_axis=-1, from_logits=False, mask=None, batch=False):
    axis = class_axis % np.ndim(y_pred)
    phi = np.moveaxis(np.asarray(distance_maps, dtype=np.float64), axis, -1)
    _, p, m = prepare_reference(np.asarray(distance_maps, dtype=np.float64), y_pred, class_axis=class_axis,
                                from_logits=from_logits, mask=mask)
    kept = kept_classes(p.shape[-1], include_background, background_index)
    results = []
    for phis, ps, ms in _sets(phi, p, m, batch=batch):
        weight = ms.sum()
        per_class = [(ms * phis[..., c] * ps[..., c]).sum() / weight if weight else 0.0 for c in kept]
        results.append(float(np.mean(per_class)))
    return np.array(results[0] if batch else results)


# --- Soft clDice (SPEC §18) -------------------------------------------------------------------


def erosion_reference(x):
    """Minimum over each element and its in-bounds axis neighbours; every axis is spatial."""
    out = np.empty_like(x)
    for index in np.ndindex(*x.shape):
        values = [x[index]]
        for axis in range(x.ndim):
            for step in (-1, 1):
                j = list(index)
                j[axis] += step
                if 0 <= j[axis] < x.shape[axis]:
                    values.append(x[tuple(j)])
        out[index] = min(values)
    return out


def dilation_reference(x):
    """Maximum over the in-bounds part of the 3^k window around each element."""
    out = np.empty_like(x)
    for index in np.ndindex(*x.shape):
        values = []
        for offset in itertools.product((-1, 0, 1), repeat=x.ndim):
            j = tuple(i + o for i, o in zip(index, offset))
            if all(0 <= a < n for a, n in zip(j, x.shape)):
                values.append(x[j])
        out[index] = max(values)
    return out


def skeleton_reference(x, iterations):
    def opening(t):
        return dilation_reference(erosion_reference(t))

    skeleton = np.maximum(x - opening(x), 0.0)
    for _ in range(iterations):
        x = erosion_reference(x)
        delta = np.maximum(x - opening(x), 0.0)
        skeleton = skeleton + np.maximum(delta - skeleton * delta, 0.0)
    return skeleton


def _ratio(numerator, denominator, epsilon):
    if denominator + epsilon == 0:
        return 1.0  # 0/0: nothing on either side is a perfect score
    return (numerator + epsilon) / (denominator + epsilon)


def cldice_parts_reference(y_true, y_pred, *, iterations=3, epsilon=1.0, include_background=False,
                           background_index=0, class_axis=-1, from_logits=False, mask=None,
                           ignore_index=None, batch=False):
    """Per sample (or batch) ``(tprec, tsens, dice_overlap)`` of SPEC §18."""
    y, p, m = prepare_reference(y_true, y_pred, class_axis=class_axis, from_logits=from_logits,
                                mask=mask, ignore_index=ignore_index)
    if ignore_index is not None:  # an ignored element has an all-zero label vector
        raw = np.asarray(y_true)
        raw = raw if raw.ndim == y.ndim - 1 else np.squeeze(raw, axis=class_axis % raw.ndim)
        y = np.where((raw == ignore_index)[..., None], 0.0, y)
    kept = kept_classes(p.shape[-1], include_background, background_index)
    skel_p, skel_y = np.zeros_like(p), np.zeros_like(y)
    for b in range(p.shape[0]):
        for c in kept:
            skel_p[b, ..., c] = skeleton_reference(p[b, ..., c], iterations)
            skel_y[b, ..., c] = skeleton_reference(y[b, ..., c], iterations)
    parts = []
    for sp, sy, ps, ys, ms in _sets(skel_p, skel_y, p, y, m, batch=batch):
        sp, sy, ps, ys = (a[..., kept] for a in (sp, sy, ps, ys))
        w = ms[..., None]
        tprec = _ratio((w * sp * ys).sum(), (w * sp).sum(), epsilon)
        tsens = _ratio((w * sy * ps).sum(), (w * sy).sum(), epsilon)
        overlap = _ratio(2.0 * (w * ys * ps).sum(), (w * ys).sum() + (w * ps).sum(), epsilon)
        parts.append((tprec, tsens, overlap))
    return parts


def harmonic_loss(tprec, tsens):
    return 1.0 - (0.0 if tprec + tsens == 0 else 2.0 * tprec * tsens / (tprec + tsens))


def cldice_reference(y_true, y_pred, *, batch=False, **options):
    parts = cldice_parts_reference(y_true, y_pred, batch=batch, **options)
    values = [harmonic_loss(tprec, tsens) for tprec, tsens, _ in parts]
    return np.array(values[0] if batch else values)


def dice_cldice_reference(y_true, y_pred, *, alpha=0.5, batch=False, **options):
    parts = cldice_parts_reference(y_true, y_pred, batch=batch, **options)
    values = [(1 - alpha) * (1 - overlap) + alpha * harmonic_loss(tprec, tsens) for tprec, tsens, overlap in parts]
    return np.array(values[0] if batch else values)


#: Edge inputs every structure-loss suite checks for finite values and gradients.
EDGE_SCENARIOS = ("perfect-logits", "wrong-logits", "perfect-probabilities", "empty-class",
                  "all-background", "fully-masked-sample", "fully-masked-batch")


def edge_scenario(scenario, y_true, logits, mask):
    """``(y_true, y_pred, mask, options)`` of one of :data:`EDGE_SCENARIOS`, made from sparse
    labels of 3 classes, logits for them and a mask (the arrays given are not changed)."""
    hit = y_true[..., None] == np.arange(3)
    mask, options = mask.copy(), {"from_logits": True}
    if scenario == "perfect-logits":
        logits = np.where(hit, 1e4, -1e4)
    elif scenario == "wrong-logits":
        logits = np.where(hit, -1e4, 1e4)
    elif scenario == "perfect-probabilities":
        logits, options = hit.astype(float), {}
    elif scenario == "empty-class":
        y_true = np.where(y_true == 2, 1, y_true)
    elif scenario == "all-background":
        y_true = np.zeros_like(y_true)
    elif scenario == "fully-masked-sample":
        mask[0] = 0.0
    elif scenario == "fully-masked-batch":
        mask[:] = 0.0
    return y_true, logits, mask, options
