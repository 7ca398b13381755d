"""Generalized Dice loss (SPEC §13): reference values, MONAI's rule for absent classes,
MONAI parity, gradients, the §9 edge grid and the §20 errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference_overlap import generalized_dice_reference
from reference_region import random_inputs

import lossfns

WEIGHTINGS = ("square", "simple", "uniform")
S1, S2, S3 = (6,), (4, 3), (2, 3, 2)

CASES = {
    "1d-onehot": dict(spatial=S1),
    "1d-soft-soft_label-batch": dict(spatial=S1, labels="soft", soft_label=True, batch=True),
    "2d-sparse-mask": dict(spatial=S2, labels="sparse", mask=True),
    "2d-axis1-logits-no-background": dict(spatial=S2, class_axis=1, from_logits=True, include_background=False),
    "2d-empty-class": dict(spatial=S2, empty_class=True, epsilon=0.0),
    "2d-empty-class-batch": dict(spatial=S2, labels="sparse", empty_class=True, batch=True, mask=True),
    "2d-ignore-index": dict(spatial=S2, labels="sparse", ignore_index=255, mask=True, epsilon=0.3),
    "2d-one-channel-sigmoid": dict(spatial=S2, num_classes=1, from_logits=True),
    "3d-sparse_unit-axis2-background-last": dict(spatial=S3, labels="sparse_unit", class_axis=2,
                                                 include_background=False, background_index=-1),
}
_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index", "empty_class")


def _inputs(case):
    make = {k: v for k, v in CASES[case].items() if k in _INPUT_KEYS}
    options = {k: v for k, v in CASES[case].items() if k not in _INPUT_KEYS}
    make.update(class_axis=options.get("class_axis", -1), logits=options.get("from_logits", False))
    return random_inputs(sum(map(ord, case)), **make), options


def _call(xp, y_true, y_pred, mask=None, dtype=np.float64, **options):
    def convert(a):
        return None if a is None else xp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)

    return lossfns.generalized_dice_loss(convert(y_true), convert(y_pred), mask=convert(mask), **options)


# Every case in float64, every third in float32 (JAX compiles each shape and dtype anew).
DTYPE_CASES = [pytest.param(c, np.float64, id=f"{c}-float64") for c in CASES] + [
    pytest.param(c, np.float32, id=f"{c}-float32") for c in list(CASES)[::3]]


@pytest.mark.parametrize("case,dtype", DTYPE_CASES)
def test_matches_reference(xp, case, dtype):
    (y_true, y_pred, mask), options = _inputs(case)
    if dtype == np.float32:
        y_pred = y_pred.astype(np.float32)
        y_true = y_true.astype(np.float32) if y_true.dtype.kind == "f" else y_true
        mask = None if mask is None else mask.astype(np.float32)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for weighting in WEIGHTINGS:
        expected = generalized_dice_reference(y_true, y_pred, mask=mask, weighting=weighting, **options)
        got = xp.to_numpy(_call(xp, y_true, y_pred, mask, dtype=dtype, weighting=weighting, **options))
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **tolerance, err_msg=weighting)


def test_absent_class_takes_the_largest_present_weight():
    # Sample 0: A = (3, 1, 0); square weights (1/9, 1, 1) -> class 2 borrows 1.
    labels = np.array([[0, 0, 0, 1], [2, 2, 2, 2]])
    probs = np.full((2, 4, 3), 0.2) + 0.4 * (np.arange(3) == np.array([[0, 1, 2, 2], [1, 2, 2, 0]])[..., None])
    tp = (probs * (labels[..., None] == np.arange(3))).sum(1)
    predicted = probs.sum(1)
    expected = []
    for s, weights in enumerate(([1 / 9, 1.0, 1.0], [1 / 16, 1 / 16, 1 / 16])):
        w = np.array(weights)
        actual = (labels[s, :, None] == np.arange(3)).sum(0)
        expected.append(1 - 2 * (w * tp[s]).sum() / (w * (predicted[s] + actual)).sum())
    got = lossfns.generalized_dice_loss(labels, probs, epsilon=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    # batch=True: A = (3, 1, 4) over the batch, every class present.
    w = 1 / np.array([3.0, 1.0, 4.0]) ** 2
    whole = 1 - 2 * (w * tp.sum(0)).sum() / (w * (predicted.sum(0) + [3, 1, 4])).sum()
    np.testing.assert_allclose(lossfns.generalized_dice_loss(labels, probs, epsilon=0.0, batch=True), whole,
                               rtol=1e-13)


def test_no_class_present_is_zero(xp):
    probs = np.random.default_rng(0).uniform(size=(3, 6, 3))  # the shapes of "1d-onehot": compiled once
    cases = {
        "fully masked": dict(y_true=np.zeros((3, 6), dtype=np.int64), mask=np.zeros((3, 6))),
        "all background without background": dict(y_true=np.zeros((3, 6), dtype=np.int64),
                                                  include_background=False),
        "empty dense labels": dict(y_true=np.zeros((3, 6, 3))),
    }
    for name, case in cases.items():
        y_true, mask = case.pop("y_true"), case.pop("mask", None)
        for weighting in WEIGHTINGS:
            if weighting == "uniform" and name != "fully masked":
                continue  # uniform weights stay 1: the predictions count
            for epsilon in (0.0, 1e-5):
                got = xp.to_numpy(_call(xp, y_true, probs, mask, weighting=weighting, epsilon=epsilon, **case))
                np.testing.assert_array_equal(got, np.zeros(3), err_msg=f"{name} {weighting} ε={epsilon}")


def test_weights_are_constants_of_the_labels():
    """The gradient equals the analytic one with w held fixed (it never depends on y_pred)."""
    torch = pytest.importorskip("torch")
    (y_true, y_pred, mask), _ = _inputs("2d-sparse-mask")
    probs = torch.tensor(y_pred, requires_grad=True)
    loss = lossfns.generalized_dice_loss(torch.tensor(y_true), probs, mask=torch.tensor(mask), epsilon=0.1)
    loss.sum().backward()
    onehot = (y_true[..., None] == np.arange(3)).astype(float)
    m = mask[..., None]
    for s in range(2):
        w = 1 / (m[s] * onehot[s]).sum((0, 1)) ** 2
        numerator = 2 * (w * (m[s] * onehot[s] * y_pred[s]).sum((0, 1))).sum() + 0.1
        denominator = (w * (m[s] * (y_pred[s] + onehot[s])).sum((0, 1))).sum() + 0.1
        expected = -(2 * w * onehot[s] * denominator - w * numerator) * m[s] / denominator**2
        np.testing.assert_allclose(probs.grad[s].numpy(), expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("options", [
    {}, {"weighting": "simple", "batch": True, "soft_label": True},
    {"from_logits": True, "include_background": False, "class_axis": 1},
])
def test_gradcheck(options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    axis = options.get("class_axis", -1)
    shape = (2, 2, 3, 3) if axis == -1 else (2, 3, 2, 3)
    y_pred = torch.tensor(rng.uniform(0.05, 0.95, size=shape), requires_grad=True)
    y_true = torch.tensor(rng.uniform(0.0, 1.0, size=shape)) if options.get("soft_label") else \
        torch.tensor(rng.integers(0, 3, size=(2, 2, 3)))
    mask = torch.tensor(rng.uniform(0.1, 1.0, size=(2, 2, 3)))
    assert torch.autograd.gradcheck(
        lambda p: lossfns.generalized_dice_loss(y_true, p, mask=mask, **options), (y_pred,))


def edge_grid():
    """SPEC §9 inputs: ``(name, y_true, y_pred, mask, from_logits)``."""
    labels = np.array([[[0, 1], [1, 0]], [[0, 0], [0, 0]]])  # sample 1: all background
    onehot = (labels[..., None] == np.arange(3)).astype(float)  # class 2 empty everywhere
    yield "perfect", labels, onehot, None, False
    yield "opposite", labels, 1 - onehot, None, False
    yield "zeros", labels, np.zeros_like(onehot), None, False
    yield "ones", labels, np.ones_like(onehot), None, False
    yield "fully masked", labels, onehot * 0.5 + 0.2, np.zeros(labels.shape), False
    yield "huge logits", labels, (2 * onehot - 1) * 1e4, None, True
    yield "soft labels exact", onehot * 0.5, onehot * 0.5, None, False


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_edge_grid_is_finite(weighting):
    torch = pytest.importorskip("torch")
    for name, y_true, y_pred, mask, from_logits in edge_grid():
        for options in ({"epsilon": 0.0}, {"batch": True}, {"include_background": False, "soft_label": True}):
            p = torch.tensor(y_pred, requires_grad=True)
            loss = lossfns.generalized_dice_loss(
                torch.tensor(y_true), p, mask=None if mask is None else torch.tensor(mask),
                weighting=weighting, from_logits=from_logits, **options).sum()
            (grad,) = torch.autograd.grad(loss, p, create_graph=True)
            (second,) = torch.autograd.grad((grad * grad).sum(), p)
            for what, value in (("value", loss), ("gradient", grad), ("second", second)):
                assert torch.isfinite(value).all(), f"{name} {options}: {what}"
            if name == "perfect":
                assert 0.0 <= loss.item() < 1e-4, options


# --- MONAI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_monai_generalized_dice(weighting, batch):
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, size=(3, 5, 4))  # class 3 of 4 absent everywhere
    labels[0] = 0  # sample 0 holds the background only
    y_pred = rng.uniform(size=(3, 5, 4, 4))
    y_pred /= y_pred.sum(-1, keepdims=True)
    onehot = (labels[..., None] == np.arange(4)).astype(float)
    for epsilon in (1e-5, 0.5):
        for include_background in (True, False):
            monai = monai_losses.GeneralizedDiceLoss(
                w_type=weighting, smooth_nr=epsilon, smooth_dr=epsilon, batch=batch, reduction="none",
                include_background=include_background)
            expected = monai(torch.tensor(np.moveaxis(y_pred, -1, 1)), torch.tensor(np.moveaxis(onehot, -1, 1)))
            ours = lossfns.generalized_dice_loss(labels, y_pred, weighting=weighting, epsilon=epsilon,
                                                 batch=batch, include_background=include_background)
            # MONAI computes the weights in float32 (ground_o.float()), hence 1e-6.
            np.testing.assert_allclose(ours, expected.numpy().reshape(np.shape(ours)), rtol=1e-6,
                                       err_msg=f"ε={epsilon} background={include_background}")


def test_monai_gives_nan_where_no_class_is_present_at_zero_epsilon():
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    target = torch.zeros(1, 2, 4)
    target[:, 0] = 1.0  # background only, dropped
    probs = torch.full((1, 2, 4), 0.5)
    monai = monai_losses.GeneralizedDiceLoss(include_background=False, smooth_nr=0.0, smooth_dr=0.0)
    assert torch.isnan(monai(probs, target))
    ours = lossfns.generalized_dice_loss(np.zeros((1, 4), dtype=np.int64), np.full((1, 4, 2), 0.5),
                                         include_background=False, epsilon=0.0)
    np.testing.assert_array_equal(ours, [0.0])


# --- Errors (SPEC §20) ------------------------------------------------------------------------


def test_unknown_weighting_is_named():
    with pytest.raises(ValueError, match="weighting must be one of 'square', 'simple', 'uniform'; got 'squared'"):
        lossfns.generalized_dice_loss(np.zeros((1, 2), dtype=int), np.full((1, 2, 2), 0.5), weighting="squared")
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        lossfns.generalized_dice_loss(np.zeros((1, 2), dtype=int), np.full((1, 2, 2), 0.5), epsilon=-1.0)
    with pytest.raises(TypeError, match="weighting must be one of .* got 2 of type int"):
        lossfns.generalized_dice_loss(np.zeros((1, 2), dtype=int), np.full((1, 2, 2), 0.5), weighting=2)
    torch_adapter = pytest.importorskip("lossfns.adapters.torch")
    with pytest.raises(ValueError, match="weighting must be one of"):
        torch_adapter.GeneralizedDiceLoss(weighting="log")
