"""The parity harness itself (``lossfns.testing``): inputs, finite differences, comparison.

These run in-process on NumPy (and torch where a device question needs a framework); the
command line around them is tested in ``test_cli.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossfns import registry, testing
from lossfns.testing import finite_differences

TAU64 = testing.GRADIENT_TOLERANCE["float64"]


def _one_hot_cross_entropy(y_true, y_pred):
    """Per-sample mean over the elements of ``-Σ_c y_c log p_c`` (a reference written here)."""
    per_element = -np.sum(y_true * np.log(y_pred), axis=-1)
    return per_element.reshape(len(y_pred), -1).mean(axis=1)


def _sorted_error_loss(y_true, y_pred):
    """Piecewise linear like the Lovász losses: ``Σ_k e_(k) / k``, ``e`` sorted decreasingly."""
    errors = np.abs(y_true - y_pred).reshape(len(y_pred), -1)
    order = np.argsort(-errors, axis=1, kind="stable")
    weights = 1.0 / np.arange(1, errors.shape[1] + 1)
    return np.take_along_axis(errors, order, axis=1) @ weights


def _sorted_error_gradient(y_true, y_pred):
    errors = np.abs(y_true - y_pred).reshape(len(y_pred), -1)
    rank = np.argsort(np.argsort(-errors, axis=1, kind="stable"), axis=1, kind="stable")
    grad = np.sign(y_pred - y_true).reshape(len(y_pred), -1) / (rank + 1.0)
    return grad.reshape(y_pred.shape)


# --------------------------------------------------------------------------- finite differences


def test_finite_difference_reference_matches_analytic_gradient():
    settings = testing.Settings(shape=(2, 5, 3), classes=4, fd_points=40)
    loss = testing.resolve_losses(["categorical_crossentropy"])[0]
    arrays = testing.make_arrays(settings, [testing.case_for(loss, settings)])
    y_true, y_pred = arrays["labels"], arrays["probabilities"]
    coords = testing.gradient_coordinates(settings, y_pred.shape)
    reference = testing.reference_gradient(loss.function, y_true, y_pred, coords, prediction="probabilities")
    # d/dp_c of the mean over 15 elements of -Σ_c y_c log p_c (no clipping this far from 0 and 1)
    analytic = -y_true[coords] / (y_pred[coords] * 15)
    np.testing.assert_allclose(reference.values, analytic, rtol=1e-10, atol=1e-12)
    assert reference.checked.all() and (reference.levels == 1).all()  # smooth: the first two steps agree
    assert np.all(np.abs(reference.values - analytic) <= reference.noise + 1e-12 * np.abs(analytic))
    assert len(coords[0]) == 40 and len(set(np.ravel_multi_index(coords, y_pred.shape))) == 40


def test_round_off_bound_covers_the_measured_error():
    # Large samples: the derivative of the mean is small compared with the loss, so the
    # reference's round-off, not its truncation, limits it.
    rng = np.random.default_rng(0)
    y_pred = rng.dirichlet(np.ones(3), size=(1, 128, 128))
    y_true = np.eye(3)[rng.integers(0, 3, size=(1, 128, 128))]
    coords = testing.gradient_coordinates(testing.Settings(shape=(1, 128, 128)), y_pred.shape)
    reference = testing.reference_gradient(_one_hot_cross_entropy, y_true, y_pred, coords,
                                           prediction="probabilities")
    analytic = -y_true[coords] / (y_pred[coords] * 128 * 128)
    assert np.all(np.abs(reference.values - analytic) <= reference.noise)


def test_kinks_are_stepped_over():
    # A sorted loss has a kink wherever two errors swap places; the first step (1% of p)
    # crosses some of them, and only the refined steps give the one-sided-free derivative.
    rng = np.random.default_rng(1)
    y_pred = rng.dirichlet(np.ones(3), size=(2, 16, 16))
    y_true = np.eye(3)[rng.integers(0, 3, size=(2, 16, 16))]
    coords = testing.gradient_coordinates(testing.Settings(fd_points=64), y_pred.shape)
    reference = testing.reference_gradient(_sorted_error_loss, y_true, y_pred, coords,
                                           prediction="probabilities")
    analytic = _sorted_error_gradient(y_true, y_pred)[coords]
    assert reference.checked.sum() >= 60
    error = np.abs(reference.values - analytic)[reference.checked]
    assert np.all(error <= reference.noise[reference.checked] + 1e-9 * np.abs(analytic).max())
    assert (reference.levels[reference.checked] > 1).sum() >= 10  # many needed a smaller step

    # The single step of the old harness straddles kinks: its derivative is off at O(1e-3).
    steps = finite_differences.STEP * finite_differences.step_scale(y_pred[coords], "probabilities")
    first, _, _ = finite_differences._stencil(_sorted_error_loss, y_true, y_pred, coords, steps, {})
    assert np.max(np.abs(first - analytic)) > 1e-3 * np.abs(analytic).max()


def test_a_kink_at_the_point_leaves_the_coordinate_out():
    # Tied errors: the derivative is not defined there, whatever the step.
    y_pred = np.array([[[0.3, 0.5, 0.2], [0.45, 0.25, 0.3]]])
    y_true = np.array([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])  # errors 0.3, 0.5, 0.2, 0.55, 0.25, 0.3
    coords = (np.array([0, 0]), np.array([0, 1]), np.array([0, 1]))  # a tied error, a free one
    reference = testing.reference_gradient(_sorted_error_loss, y_true, y_pred, coords,
                                           prediction="probabilities")
    assert reference.checked.tolist() == [False, True]
    cell = testing.judge(_sorted_error_loss(y_true, y_pred), _sorted_error_gradient(y_true, y_pred),
                         _sorted_error_loss(y_true, y_pred), reference,
                         value_tolerance=1e-10, gradient_tolerance=TAU64)
    assert cell.status == "pass" and "1 of 2 gradient coordinates not checked" in cell.message


def test_gradient_scale_is_the_root_mean_square_entry():
    rng = np.random.default_rng(2)
    y_pred = rng.normal(size=(3, 200, 4))
    weights = rng.normal(size=(1, 200, 4))

    def linear(y_true, y_pred):  # gradient = weights, the same for every sample
        return np.sum(y_pred * weights, axis=(1, 2))

    scale = finite_differences.gradient_scale(linear, np.zeros(3), y_pred, "logits", {}, seed=0)
    rms = np.sqrt(np.mean(weights ** 2))
    assert rms / 10 < scale < rms * 10


# --------------------------------------------------------------------------- comparison


def _all_zero_reference(classes=100):
    """Cross-entropy on one-hot labels, 100 classes, one element: coordinates off the true class."""
    y_pred = np.random.default_rng(3).dirichlet(np.ones(classes), size=(2, 1))
    y_true = np.zeros_like(y_pred)
    y_true[:, 0, 0] = 1.0
    coords = (np.array([0, 0, 1, 1]), np.zeros(4, dtype=int), np.array([5, 17, 42, 99]))
    reference = testing.reference_gradient(_one_hot_cross_entropy, y_true, y_pred, coords,
                                           prediction="probabilities")
    analytic = np.where(y_true == 1, -1 / y_pred, 0.0)
    return reference, analytic


def test_zero_gradient_at_every_sampled_coordinate_passes_correct_code():
    # Regression (issue 11, 3.8): the true gradient is 0 at every sampled coordinate.
    reference, analytic = _all_zero_reference()
    assert reference.checked.all()
    # 0 up to the reference's round-off (NumPy's vectorised log may round the same p
    # differently at different positions of the stacked copies).
    assert np.all(np.abs(reference.values) <= reference.noise)
    assert reference.scale > 1e-2  # the true class's derivative, seen along a random direction
    noise = np.random.default_rng(4).normal(size=analytic.shape)
    for dtype, tolerance in testing.GRADIENT_TOLERANCE.items():
        assert testing.gradient_difference(analytic, reference, tolerance) <= tolerance / 100
        rounded = analytic + np.finfo(dtype).eps * reference.scale * noise  # a backend's rounding
        assert testing.gradient_difference(rounded, reference, tolerance) <= tolerance / 10
    cell = testing.judge(np.ones(2), rounded, np.ones(2), reference, value_tolerance=1e-10,
                         gradient_tolerance=testing.GRADIENT_TOLERANCE["float32"])
    assert cell.status == "pass", cell


def test_the_old_metric_failed_correct_code_there():
    # The harness used to judge gradients like values, max|g - r| / max|r|: with r = 0 a
    # backend's rounding of 1e-20 failed, and with r at round-off level an exact 0 failed.
    reference, analytic = _all_zero_reference()
    exact_zero = reference._replace(values=np.zeros(4))
    at_round_off = reference._replace(values=reference.noise * np.array([0.1, -0.2, 0.05, 0.0]))
    rounded = analytic + 1e-20
    old = testing.relative_difference
    assert old(rounded[reference.coords], exact_zero.values) > 1e200
    assert old(analytic[reference.coords], at_round_off.values) == 1.0
    assert testing.gradient_difference(rounded, exact_zero, TAU64) < TAU64 / 100
    assert testing.gradient_difference(analytic, at_round_off, TAU64) < TAU64 / 100


def test_zero_gradient_floor_still_catches_a_wrong_derivative():
    reference, analytic = _all_zero_reference()
    wrong = analytic.copy()
    wrong[1, 0, 42] = 1e-3 * reference.scale  # should be 0
    assert testing.gradient_difference(wrong, reference, TAU64) > TAU64 * 1000
    scaled = analytic * (1 + 1e-3)  # off where the gradient is not 0 is off anywhere else too
    scaled[0, 0, 5] = 1e-6 * reference.scale
    assert testing.gradient_difference(scaled, reference, TAU64) > TAU64


def test_non_finite_results_fail_with_json_safe_numbers():
    reference, analytic = _all_zero_reference()
    cell = testing.judge(np.array([np.nan, 1.0]), analytic, np.ones(2), reference,
                         value_tolerance=1e-10, gradient_tolerance=TAU64)
    assert cell.status == "fail" and cell.value_diff is None and "not finite" in cell.message
    json.dumps(vars(cell), allow_nan=False)
    bad_grad = analytic.copy()
    bad_grad[0, 0, 5] = np.inf
    cell = testing.judge(np.ones(2), bad_grad, np.ones(2), reference, value_tolerance=1e-10,
                         gradient_tolerance=TAU64)
    assert cell.status == "fail" and cell.grad_diff is None and cell.value_diff == 0
    cell = testing.judge(np.ones(2), analytic[:, :, :50], np.ones(2), reference, value_tolerance=1e-10,
                         gradient_tolerance=TAU64)
    assert cell.status == "fail" and "wrong shape" in cell.message
    # A NaN reference fails too, and stays out of the JSON.
    cell = testing.judge(np.ones(2), analytic, np.array([np.nan, 1.0]), reference, value_tolerance=1e-10,
                         gradient_tolerance=TAU64)
    assert cell.status == "fail" and cell.value_diff is None


# --------------------------------------------------------------------------- inputs


def _loss(**fields):
    return testing.Loss("probe", lambda y_true, y_pred: None, "Probe", **fields)


@pytest.mark.parametrize("from_logits", [False, True, "sigmoid"])
def test_cases_follow_target_kind_and_logits_only(from_logits):
    settings = testing.Settings(shape=(2, 6, 5), classes=3, from_logits=from_logits, dtype="float32")
    maps = testing.case_for(_loss(target_kind="distance_maps"), settings)
    hinge = testing.case_for(_loss(logits_only=True), settings)
    plain = testing.case_for(_loss(), settings)
    assert maps.target == "distance_maps" and hinge.prediction == "logits"
    assert plain.prediction == ("probabilities" if from_logits is False else "logits")
    assert plain.options == hinge.options == ({} if from_logits is False else {"from_logits": from_logits})
    arrays = testing.make_arrays(settings, [maps, hinge, plain])
    assert arrays["distance_maps"].shape == arrays["logits"].shape == (2, 6, 5, 3)
    assert arrays["distance_maps"].dtype == np.float32
    assert np.all(np.isfinite(arrays["distance_maps"])) and np.any(arrays["distance_maps"] < 0)


def test_arrays_do_not_depend_on_which_losses_run():
    settings = testing.Settings(shape=(2, 4, 4), classes=2, sparse=True)
    alone = testing.make_arrays(settings, [testing.case_for(_loss(), settings)])
    together = testing.make_arrays(settings, [testing.case_for(_loss(), settings),
                                              testing.case_for(_loss(target_kind="distance_maps", logits_only=True), settings)])
    for name, array in alone.items():
        np.testing.assert_array_equal(array, together[name])
    assert alone["labels"].dtype == np.int64 and alone["labels"].shape == (2, 4, 4)


def test_registry_fields_are_read_with_defaults():
    for spec, loss in zip(registry.LOSSES, testing.resolve_losses()):
        assert loss.target_kind == getattr(spec, "target_kind", "labels")
        assert loss.logits_only == getattr(spec, "logits_only", False)
    assert "deep_supervision" not in {loss.name for loss in testing.resolve_losses()}


@pytest.mark.parametrize("field, value, fragment", [
    ("seed", -1, "seed"), ("shape", (2, 0), "shape"), ("shape", (), "shape"), ("classes", 0, "classes"),
    ("fd_points", 0, "fd_points"), ("dtype", "float16", "dtype"), ("from_logits", "relu", "from_logits"),
    ("device", "tpu", "device"), ("device", "cuda:x", "device"),
])
def test_settings_reject_bad_values_by_name(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        testing.Settings(**{field: value})


def test_device_names():
    assert testing.parse_device("cuda") == "cuda:0"
    assert testing.Settings(device="cuda:1").device == "cuda:1"
    assert testing.Settings().device == "cpu"


def test_host_backends_do_not_claim_a_gpu():
    evaluator, where, reason = testing.load_evaluator("numpy", "cuda:0")
    assert evaluator is None and where is None and "host only" in reason
    evaluator, where, reason = testing.load_evaluator("numpy", "cpu")
    assert evaluator is not None and where == "cpu" and reason == ""


def test_torch_evaluator_on_cpu_and_on_cuda():
    torch = pytest.importorskip("torch")
    evaluator, where, reason = testing.load_evaluator("torch", "cpu")
    assert (where, reason) == ("cpu", "")
    settings = testing.Settings(shape=(2, 3), classes=3)
    loss = testing.resolve_losses(["tversky_loss"])[0]
    arrays = testing.make_arrays(settings, [testing.case_for(loss, settings)])
    value, grad = evaluator(loss, arrays["labels"], arrays["probabilities"], {}, "float64")
    np.testing.assert_allclose(value, loss.function(arrays["labels"], arrays["probabilities"]), rtol=1e-12)
    assert grad.shape == arrays["probabilities"].shape

    evaluator, where, reason = testing.load_evaluator("torch", "cuda:0")
    if torch.cuda.is_available():
        assert evaluator is not None and where.startswith("cuda:0 (")
    else:
        assert evaluator is None and reason == "torch sees no CUDA device"


def test_memory_estimate_counts_the_workers_that_run():
    settings = testing.Settings(shape=(2, 64, 64, 64))
    host_only = testing.memory_estimate(settings, ["numpy", "array-api-strict"])
    torch_only = testing.memory_estimate(settings, ["numpy", "torch", "torch-adapter", "keras-torch"])
    everything = testing.memory_estimate(settings)
    assert host_only < torch_only < everything
    assert everything == 3 * torch_only - 2 * host_only  # one share per framework worker
    assert host_only >= 44 * settings.elements  # measured in the calling process
