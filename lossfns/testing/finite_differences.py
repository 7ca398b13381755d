r"""The gradient reference: finite differences of the float64 NumPy core.

The reference is independent of every autodiff system. For each sampled coordinate ``i``
it is the 7-point central difference of :math:`f = \sum_b \ell_b` (the per-sample losses
summed over the batch),

.. math:: g_i \approx \frac{-f_{-3} + 9 f_{-2} - 45 f_{-1} + 45 f_{1} - 9 f_{2} + f_{3}}{60 h},
   \qquad f_k = f(x + k h e_i),

with the step :math:`h = h_0 = 10^{-2} s_i`, where :math:`s_i = \min(p, 1 - p)` for
probabilities (the stencil never reaches the clip range at :math:`10^{-7}`) and
:math:`\max(1, |x|)` for logits. Its truncation error is :math:`O(h^6)`, about
:math:`10^{-12}` relative for the log terms.

**Round-off.** Each :math:`f_k` is rounded to about :math:`\epsilon_{64} |f|`, which the
difference divides by :math:`h`; :math:`\eta(h) = 50\,\epsilon_{64} \max_k |f_k| / h`
bounds the error this adds (measured against autodiff over every loss, the error stayed
below :math:`4.6\,\epsilon_{64} \max_k |f_k| / h`, the worst being the Combo loss, whose
value is a difference). It is absolute: where the derivative of a per-sample mean over ``N``
elements is :math:`O(|f|/N)`, it grows relative to the gradient like ``N``.

**Kinks.** Some losses are only piecewise smooth: the Lovász losses sort the errors (a kink
wherever two errors swap places) and the hinge clips them at 0, soft clDice takes minima and
maxima. A stencil that straddles a kink mixes two slopes and gives neither. So the step is
refined: :math:`h_j = h_0 / 4^j` for ``j = 0 … 7``, and the reference is the estimate at
:math:`h_{j+1}` for the first ``j`` at which the estimates at :math:`h_j` and
:math:`h_{j+1}` agree, to within the round-off of both, :math:`\eta(h_j) + \eta(h_{j+1})`,
plus :math:`10^{-8}` of the gradient's size, and the forward and backward one-sided
derivatives at :math:`h_{j+1}` (4 points each, from the same stencil and :math:`f(x)`) agree
too. The first sum is also the reference's uncertainty :math:`\eta_i` at that coordinate,
which the comparison allows for. A central stencil centred on a kink is symmetric and gives
the mean of the two slopes at every step; only the one-sided pair sees that kink. For a
smooth loss the first two steps agree (two passes: the cost of the check); a
stencil that crosses a kink disagrees with a smaller one (by more than the round-off, or the
kink's effect is within :math:`\eta_i`), and one that lies between two kinks (where the
loss is smooth) agrees with every smaller one. A coordinate where no two steps agree (a kink
closer than :math:`3 h_7 \approx 2 \cdot 10^{-6} s_i`, about 1 in 4000 coordinates for the
Lovász losses at the default shape, or at the point itself, as with tied errors) is left out
of the comparison and counted in the report; the derivative is not defined there.

**Scale.** Where every sampled coordinate has a zero derivative (100 classes, one-hot labels
and a cross-entropy: only the true class's probability matters), the sampled gradient says
nothing about the size of the gradient. One more central difference, along a random
direction :math:`u` over every element of a sample (:math:`u_i = z_i s_i`, :math:`z_i`
standard normal clipped to ±3), gives :math:`|\nabla f \cdot u| / \|u\|`, an estimate of
the root-mean-square gradient entry: the scale under which the comparison puts its floor
(:mod:`lossfns.testing.comparison`).

A loss is a sum of per-sample terms (``batch=False``), so :math:`\partial f / \partial x_i`
only involves the sample of ``i``: the perturbed copies of each sample are stacked into one
batch and the core runs once per step level, not once per coordinate and offset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Relative step of the first level.
STEP = 1e-2
#: Each further level divides the step by this.
REFINEMENT = 4
#: Step levels tried before a coordinate is left out.
LEVELS = 8
#: Round-off bound :math:`\eta(h) = ` this :math:`\times\,\epsilon_{64} \max_k |f_k| / h`
#: (ten times the largest error measured against autodiff).
NOISE_FACTOR = 50.0
#: Two levels agree within their round-off plus this fraction of the gradient's size.
AGREEMENT = 1e-8
#: The one-sided derivatives agree within their round-off (8 η: their weights are 3.6 times
#: the central ones') plus this fraction of the gradient's size (their truncation error is
#: :math:`O(h^3)`, about 1e-8 relative at the second level).
ONE_SIDED_AGREEMENT = 1e-6

_OFFSETS = np.arange(-3.0, 4.0)
_CENTRAL = np.array([-1.0, 9.0, -45.0, 0.0, 45.0, -9.0, 1.0]) / 60.0
_FORWARD = np.array([0.0, 0.0, 0.0, -11.0, 18.0, -9.0, 2.0]) / 6.0
_BACKWARD = -_FORWARD[::-1]
# Elements of perturbed copies held in memory at once.
_CHUNK_ELEMENTS = 1 << 22
_EPS = float(np.finfo(np.float64).eps)


class GradientReference(NamedTuple):
    """Finite-difference derivatives at ``coords`` of an array of shape ``shape``.

    ``values`` and ``noise`` (the uncertainty :math:`\\eta_i`) per coordinate, ``checked``
    false where no two step levels agreed (a kink), ``scale`` the root-mean-square gradient
    entry (largest over the samples), ``levels`` the step level of each value.
    """

    shape: tuple
    coords: tuple
    values: np.ndarray
    noise: np.ndarray
    checked: np.ndarray
    scale: float
    levels: np.ndarray


def step_scale(x, prediction: str):
    """:math:`s`: ``min(p, 1 - p)`` for probabilities, ``max(1, |x|)`` for logits."""
    x = np.asarray(x, dtype=np.float64)
    return np.minimum(x, 1.0 - x) if prediction == "probabilities" else np.maximum(1.0, np.abs(x))


def _losses_of_copies(function, y_true, y_pred, samples, modify, options):
    """``f`` of perturbed copies: row ``r`` is sample ``samples[r]`` after ``modify(pred, rows)``."""
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, y_pred[0].size))
    losses = []
    for start in range(0, len(samples), per_chunk):
        rows = np.arange(start, min(start + per_chunk, len(samples)))
        pred = y_pred[samples[rows]]
        modify(pred, rows)
        value = function(y_true[samples[rows]], pred, **options)
        losses.append(np.asarray(value, dtype=np.float64).reshape(len(rows)))
    return np.concatenate(losses) if losses else np.zeros(0)


def _stencil(function, y_true, y_pred, coords, steps, options):
    """At ``coords`` with ``steps``: the 7-point derivative, its round-off bound, and the gap
    between the one-sided (4-point, third-order) derivatives, which is nonzero at a kink."""
    n = len(_OFFSETS)
    point = np.repeat(np.arange(len(steps)), n)  # which coordinate a row perturbs
    offset = np.tile(_OFFSETS, len(steps))
    x = y_pred[coords]

    def modify(pred, rows):
        where = (np.arange(len(rows)),) + tuple(c[point[rows]] for c in coords[1:])
        pred[where] = x[point[rows]] + offset[rows] * steps[point[rows]]

    f = _losses_of_copies(function, y_true, y_pred, coords[0][point], modify, options).reshape(len(steps), n)
    noise = NOISE_FACTOR * _EPS * np.max(np.abs(f), axis=1, initial=0.0) / steps
    return f @ _CENTRAL / steps, noise, f @ (_FORWARD - _BACKWARD) / steps


def gradient_scale(function, y_true, y_pred, prediction: str, options, seed: int) -> float:
    """Root-mean-square gradient entry, largest over the samples (one random direction each)."""
    rng = np.random.default_rng(seed)
    direction = np.clip(rng.standard_normal(y_pred.shape), -3.0, 3.0) * step_scale(y_pred, prediction)
    n, batch = len(_OFFSETS), y_pred.shape[0]
    sample = np.repeat(np.arange(batch), n)
    offset = np.tile(_OFFSETS, batch)

    def modify(pred, rows):
        shift = (offset[rows] * STEP).reshape((-1,) + (1,) * (pred.ndim - 1))
        pred += shift * direction[sample[rows]]

    f = _losses_of_copies(function, y_true, y_pred, sample, modify, options).reshape(batch, n)
    derivative = f @ _CENTRAL / STEP
    norms = np.sqrt(np.sum(direction.reshape(batch, -1) ** 2, axis=1))
    ratio = np.abs(derivative) / np.where(norms > 0, norms, 1.0)
    return float(np.max(ratio[np.isfinite(ratio)], initial=0.0))


def reference_gradient(function, y_true, y_pred, coords, *, prediction: str, options=None,
                       seed: int = 0) -> GradientReference:
    """The finite-difference reference at ``coords`` (see the module docstring)."""
    options = options or {}
    y_pred = np.asarray(y_pred, dtype=np.float64)
    scale = gradient_scale(function, y_true, y_pred, prediction, options, seed)
    base = STEP * step_scale(y_pred[coords], prediction)
    count = len(base)
    values, noise = np.zeros(count), np.zeros(count)
    checked, levels = np.zeros(count, dtype=bool), np.full(count, LEVELS - 1)
    pending = np.arange(count)
    grad, eta, _ = _stencil(function, y_true, y_pred, coords, base, options)
    for level in range(1, LEVELS):
        subset = tuple(c[pending] for c in coords)
        finer, finer_eta, gap = _stencil(function, y_true, y_pred, subset, base[pending] / REFINEMENT ** level, options)
        size = np.maximum(np.abs(finer), scale)
        agree = (np.abs(grad - finer) <= eta + finer_eta + AGREEMENT * size) & (
            np.abs(gap) <= 8 * finer_eta + ONE_SIDED_AGREEMENT * size)
        done = pending[agree]
        # The finer estimate: it straddles a kink less often, and its round-off is covered.
        values[done], checked[done], levels[done] = finer[agree], True, level
        noise[done] = eta[agree] + finer_eta[agree]
        pending, grad, eta = pending[~agree], finer[~agree], finer_eta[~agree]
        if not len(pending):
            break
    values[pending], noise[pending] = grad, eta
    return GradientReference(tuple(y_pred.shape), coords, values, noise, checked, scale, levels)
