"""Float64 NumPy reference for the Hausdorff distance loss (SPEC §22), independent of ``lossfns``.

The distance fields compare every element with every other one (no SciPy), and the loss is
the SPEC's formula class by class and sample by sample. Input preparation (class axis last,
one-hot, softmax, mask) is :func:`reference_region.prepare_reference`.
"""

from __future__ import annotations

import numpy as np
from reference_region import prepare_reference


def distance_field_reference(binary):
    """Each element's Euclidean distance to the nearest element of the other value (0 if none)."""
    binary = np.asarray(binary, dtype=bool)
    points = np.array(list(np.ndindex(*binary.shape)), dtype=np.float64).reshape(-1, binary.ndim)
    flat = binary.reshape(-1)
    if flat.all() or not flat.any():
        return np.zeros(binary.shape)
    pairwise = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    other_value = flat[:, None] != flat[None, :]
    return np.where(other_value, pairwise, np.inf).min(axis=1).reshape(binary.shape)


def hausdorff_reference(y_true, y_pred, *, alpha=2.0, log=False, include_background=False,
                        background_index=0, class_axis=-1, from_logits=False, mask=None, batch=False):
    """``[batch]`` losses (``[]`` with ``batch=True``) straight from the SPEC's formula."""
    y, p, m = prepare_reference(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask)
    num_classes = p.shape[-1]
    if include_background or num_classes == 1:
        kept = list(range(num_classes))
    else:
        kept = [c for c in range(num_classes) if c != background_index % num_classes]
    term = np.zeros(p.shape[:-1])  # mean over the kept classes, per element
    for b in range(p.shape[0]):
        for c in kept:
            d_p = distance_field_reference(p[b, ..., c] > 0.5)
            d_y = distance_field_reference(y[b, ..., c] > 0.5)
            term[b] += (p[b, ..., c] - y[b, ..., c]) ** 2 * (d_p**alpha + d_y**alpha) / len(kept)
    groups = [(term, m)] if batch else [(term[b], m[b]) for b in range(p.shape[0])]
    losses = np.array([(mg * tg).sum() / mg.sum() if mg.sum() else 0.0 for tg, mg in groups])
    losses = np.log1p(losses) if log else losses
    return losses[0] if batch else losses
