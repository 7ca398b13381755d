r"""How a backend's result is judged against the reference.

**Values**: normwise relative, :math:`\max_b |v_b - r_b| / \max_b |r_b|` over the per-sample
values, against :data:`~lossfns.testing.settings.VALUE_TOLERANCE` (the reference is the
float64 NumPy core on the same inputs; random inputs never give an all-zero loss).

**Gradients**: normwise relative with an absolute floor, at the sampled coordinates ``i``
where the reference is defined (:mod:`lossfns.testing.finite_differences`):

.. math:: d = \max_i \frac{|g_i - r_i|}{\max(R, S) + \eta_i / \tau}, \qquad R = \max_i |r_i|,

and the cell passes when :math:`d \le \tau`, the dtype's
:data:`~lossfns.testing.settings.GRADIENT_TOLERANCE`; that is, when every
:math:`|g_i - r_i| \le \tau \max(R, S) + \eta_i`. The floor has two parts:

* :math:`S`, the root-mean-square gradient entry of the sample (from a random directional
  difference): where the true gradient is 0 at every sampled coordinate, ``R`` is 0 (or
  finite-difference noise) and the old metric, :math:`\max|g - r| / \max|r|`, failed correct
  code on a rounding error of :math:`10^{-20}`. A backend's rounding of a zero derivative
  is of the order of :math:`\epsilon` times the gradient's typical entry, far below
  :math:`\tau S`.
* :math:`\eta_i`, the reference's own round-off at that coordinate: a difference below it
  says nothing about the backend. It matters for large samples, where the derivative of a
  mean is small compared with the loss.

A difference that is not finite, or a gradient of the wrong shape, fails with a message
(JSON has no infinity).
"""

from __future__ import annotations

import numpy as np

from .finite_differences import GradientReference
from .report import Cell

_TINY = float(np.finfo(np.float64).tiny)


def _finite_or_inf(x) -> float:
    # A NaN reference (or an overflow) must fail, and must not reach the JSON report.
    x = float(x)
    return x if np.isfinite(x) else float("inf")


def relative_difference(actual, expected) -> float:
    """``max |actual - expected| / max |expected|`` (inf on a shape mismatch or a NaN anywhere)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)):
        return float("inf")
    scale = max(float(np.max(np.abs(expected), initial=0.0)), _TINY)
    return _finite_or_inf(np.max(np.abs(actual - expected), initial=0.0) / scale)


def gradient_difference(actual, reference: GradientReference, tolerance: float) -> float:
    """:math:`d` of the module docstring (inf on a shape mismatch or a non-finite gradient)."""
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != tuple(reference.shape):
        return float("inf")
    sampled = actual[reference.coords][reference.checked]
    expected = reference.values[reference.checked]
    if not np.all(np.isfinite(sampled)):
        return float("inf")
    size = max(float(np.max(np.abs(expected), initial=0.0)), reference.scale)
    denominator = np.maximum(size + reference.noise[reference.checked] / tolerance, _TINY)
    return _finite_or_inf(np.max(np.abs(sampled - expected) / denominator, initial=0.0))


def judge(value, grad, reference_value, reference_grad: GradientReference | None, *,
          value_tolerance: float, gradient_tolerance: float) -> Cell:
    """The :class:`Cell` of one backend's ``(value, grad)``; ``grad`` None: value only."""
    value_diff = relative_difference(value, reference_value)
    grad_diff = None
    if grad is not None and reference_grad is not None:
        grad_diff = gradient_difference(grad, reference_grad, gradient_tolerance)
    notes = []
    bad = [what for what, diff in (("value", value_diff), ("gradient", grad_diff)) if diff == float("inf")]
    if bad:
        notes.append(f"{' and '.join(bad)} not finite or of the wrong shape")
    if grad_diff is not None and reference_grad is not None and not reference_grad.checked.all():
        left_out = int(np.count_nonzero(~reference_grad.checked))
        notes.append(f"{left_out} of {len(reference_grad.checked)} gradient coordinates not checked "
                     "(a kink within the finest finite-difference step)")
    ok = not bad and value_diff <= value_tolerance and (grad_diff is None or grad_diff <= gradient_tolerance)
    # JSON has no infinity: such a difference is reported as null, with the message.
    shown_value, shown_grad = (None if d == float("inf") else d for d in (value_diff, grad_diff))
    return Cell("pass" if ok else "fail", shown_value, shown_grad, "; ".join(notes))
