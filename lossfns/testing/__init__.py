"""The cross-framework parity harness behind ``lossfns parity`` (not part of ``import lossfns``).

Every selected loss is evaluated on every installed backend, on the same generated inputs,
and compared with a float64 NumPy reference:

* value: the core on NumPy in float64, fed the inputs *after* rounding to the run's dtype
  (so a float32 run measures the float32 arithmetic, not the rounding of its inputs);
* gradient of :math:`\\sum_b \\ell_b` w.r.t. ``y_pred``: finite differences of the same
  NumPy float64 core at a few random coordinates, with a step refined until the stencil
  crosses no kink (:mod:`~lossfns.testing.finite_differences`);
* both judged normwise relative, the gradient with an absolute floor (the gradient's
  root-mean-square entry and the finite differences' round-off), so a gradient that is 0 at
  every sampled coordinate does not fail correct code (:mod:`~lossfns.testing.comparison`).

Modules, by concern: :mod:`~lossfns.testing.settings` (what to run, tolerances),
:mod:`~lossfns.testing.inputs` (the arrays each loss is fed, from the registry's
``target_kind`` and ``logits_only``), :mod:`~lossfns.testing.finite_differences`,
:mod:`~lossfns.testing.comparison`, :mod:`~lossfns.testing.evaluators` (one per backend, on
``cpu`` or ``cuda``), :mod:`~lossfns.testing.workers` (one process per framework, so no
framework loads in the calling process), :mod:`~lossfns.testing.harness` (:func:`run`) and
:mod:`~lossfns.testing.report`.

Test hook: ``LOSSFNS_PARITY_PERTURB=<backend>[,<backend>...]`` multiplies those backends'
values by ``1 + 1e-3`` before the comparison, to check that a disagreement is caught.
"""

from .comparison import gradient_difference, judge, relative_difference
from .evaluators import DeviceUnavailable, load_evaluator
from .finite_differences import GradientReference, reference_gradient
from .harness import run
from .inputs import Case, case_for, gradient_coordinates, make_arrays, memory_estimate
from .report import Cell, Report, one_line
from .settings import (
    BACKEND_GROUPS,
    BACKENDS,
    GRADIENT_TOLERANCE,
    PERTURB_ENV,
    PERTURB_FACTOR,
    VALUE_TOLERANCE,
    Loss,
    Settings,
    parse_device,
    perturbed_backends,
    resolve_backends,
    resolve_losses,
)

__all__ = [
    "BACKENDS",
    "BACKEND_GROUPS",
    "Case",
    "Cell",
    "DeviceUnavailable",
    "GRADIENT_TOLERANCE",
    "GradientReference",
    "Loss",
    "PERTURB_ENV",
    "PERTURB_FACTOR",
    "Report",
    "Settings",
    "VALUE_TOLERANCE",
    "case_for",
    "gradient_coordinates",
    "gradient_difference",
    "judge",
    "load_evaluator",
    "make_arrays",
    "memory_estimate",
    "one_line",
    "parse_device",
    "perturbed_backends",
    "reference_gradient",
    "relative_difference",
    "resolve_backends",
    "resolve_losses",
    "run",
]
