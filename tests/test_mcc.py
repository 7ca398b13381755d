"""Matthews correlation loss (SPEC §14): reference values with §4 averaging, the ε = 0 rule,
finite gradients where the square root's argument is 0, smp parity and the §20 errors."""

from __future__ import annotations

import numpy as np
import pytest
from peers_import import smp_losses
from reference_overlap import mcc_reference, mcc_value
from reference_region import random_inputs

import lossfns

S0, S1, S2, S3 = (), (6,), (4, 3), (2, 3, 2)
CASES = {
    "0d-onehot": dict(spatial=S0),
    "1d-soft-micro-soft_label": dict(spatial=S1, labels="soft", average="micro", soft_label=True),
    "1d-sparse-weighted-mask-batch": dict(spatial=S1, labels="sparse", average="weighted", mask=True, batch=True),
    "2d-weights-no-background": dict(spatial=S2, average="weighted", class_weights=(0.2, 0.5, 1.5),
                                     include_background=False, epsilon=0.01),
    "2d-axis1-logits-micro-batch": dict(spatial=S2, class_axis=1, from_logits=True, average="micro", batch=True),
    "2d-one-channel-sigmoid": dict(spatial=S2, num_classes=1, from_logits=True, mask=True),
    "2d-empty-class-eps0": dict(spatial=S2, empty_class=True, epsilon=0.0),
    "3d-sparse-ignore": dict(spatial=S3, labels="sparse", ignore_index=255, mask=True, average="weighted"),
}
_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index", "empty_class")
DTYPE_CASES = [pytest.param(c, np.float64, id=f"{c}-float64") for c in CASES] + [
    pytest.param(c, np.float32, id=f"{c}-float32") for c in list(CASES)[1::3]]


def _call(xp, y_true, y_pred, mask=None, dtype=np.float64, **options):
    def convert(a):
        return None if a is None else xp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)

    return lossfns.mcc_loss(convert(y_true), convert(y_pred), mask=convert(mask), **options)


@pytest.mark.parametrize("case,dtype", DTYPE_CASES)
def test_matches_reference(xp, case, dtype):
    make = {k: v for k, v in CASES[case].items() if k in _INPUT_KEYS}
    options = {k: v for k, v in CASES[case].items() if k not in _INPUT_KEYS}
    make.update(class_axis=options.get("class_axis", -1), logits=options.get("from_logits", False))
    y_true, y_pred, mask = random_inputs(sum(map(ord, case)), **make)
    if dtype == np.float32:
        y_pred = y_pred.astype(np.float32)
        y_true = y_true.astype(np.float32) if y_true.dtype.kind == "f" else y_true
        mask = None if mask is None else mask.astype(np.float32)
    expected = mcc_reference(y_true, y_pred, mask=mask, **options)
    got = xp.to_numpy(_call(xp, y_true, y_pred, mask, dtype=dtype, **options))
    assert got.dtype == dtype and got.shape == expected.shape
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, expected, **tolerance)


def test_zero_denominator_at_zero_epsilon():
    # Sample 0: class 2 absent and never predicted (FP = FN = 0): MCC 1. Sample 1: class 0
    # everywhere (TN + FP = 0) with FN = 0.5: MCC 0; class 1 absent, never predicted: MCC 1;
    # class 2 absent but predicted (FP = 0.5): MCC 0.
    labels = np.array([[0, 1, 0, 1], [0, 0, 0, 0]])
    probs = np.array([[[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]],
                      [[0.5, 0, 0.5], [1, 0, 0], [1, 0, 0], [1, 0, 0]]], dtype=float)
    got = lossfns.mcc_loss(labels, probs, epsilon=0.0, average="macro")
    mcc = [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]
    np.testing.assert_allclose(got, 1 - np.mean(mcc, axis=1), atol=1e-15)
    np.testing.assert_allclose(got, mcc_reference(labels, probs, epsilon=0.0), atol=1e-15)
    # With ε > 0 the SPEC formula gives a perfectly predicted absent class MCC 0 (0 / ε): loss 1/3.
    np.testing.assert_allclose(lossfns.mcc_loss(labels[:1], probs[:1]), [1 / 3], rtol=1e-5)


def test_micro_sums_true_negatives_over_classes():
    y_true, y_pred, _ = random_inputs(4, spatial=S2)
    onehot = y_true.reshape(3, -1, 3)
    p = y_pred.reshape(3, -1, 3)
    tp, fp = (onehot * p).sum((1, 2)), ((1 - onehot) * p).sum((1, 2))
    fn, tn = (onehot * (1 - p)).sum((1, 2)), ((1 - onehot) * (1 - p)).sum((1, 2))
    expected = [1 - mcc_value(*t, 1e-5) for t in zip(tp, fp, fn, tn)]
    np.testing.assert_allclose(lossfns.mcc_loss(y_true, y_pred, average="micro"), expected, rtol=1e-12)


@pytest.mark.parametrize("options", [{}, {"average": "micro", "batch": True, "soft_label": True},
                                     {"from_logits": True, "average": "weighted", "class_axis": 1}])
def test_gradcheck(options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    shape = (2, 3, 2, 3) if options.get("class_axis") == 1 else (2, 2, 3, 3)
    y_pred = torch.tensor(rng.uniform(0.05, 0.95, size=shape), requires_grad=True)
    y_true = torch.tensor(rng.uniform(size=shape)) if options.get("soft_label") else \
        torch.tensor(rng.integers(0, 3, size=(2, 2, 3)))
    mask = torch.tensor(rng.uniform(0.1, 1.0, size=(2, 2, 3)))
    assert torch.autograd.gradcheck(lambda p: lossfns.mcc_loss(y_true, p, mask=mask, **options), (y_pred,))


def edge_grid():
    labels = np.array([[[0, 1], [1, 0]], [[0, 0], [0, 0]]])  # sample 1 all background, class 2 empty
    onehot = (labels[..., None] == np.arange(3)).astype(float)
    yield "perfect", labels, onehot, None, False
    yield "opposite", labels, 1 - onehot, None, False
    yield "zeros", labels, np.zeros_like(onehot), None, False
    yield "ones", labels, np.ones_like(onehot), None, False
    yield "fully masked", labels, onehot * 0.5 + 0.2, np.zeros(labels.shape), False
    yield "huge logits", labels, (2 * onehot - 1) * 1e4, None, True
    yield "soft exact", onehot * 0.5, onehot * 0.5, None, False


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_edge_grid_is_finite(average):
    """Values, gradients and second derivatives, also where the square root's argument is 0."""
    torch = pytest.importorskip("torch")
    for name, y_true, y_pred, mask, from_logits in edge_grid():
        for options in ({"epsilon": 0.0}, {"batch": True}, {"include_background": False, "soft_label": True}):
            p = torch.tensor(y_pred, requires_grad=True)
            loss = lossfns.mcc_loss(torch.tensor(y_true), p, mask=None if mask is None else torch.tensor(mask),
                                    average=average, from_logits=from_logits, **options).sum()
            (grad,) = torch.autograd.grad(loss, p, create_graph=True)
            (second,) = torch.autograd.grad((grad * grad).sum(), p)
            for what, value in (("value", loss), ("gradient", grad), ("second", second)):
                assert torch.isfinite(value).all(), f"{name} {options}: {what}"


def test_safe_sqrt_has_finite_derivatives_at_zero():
    torch = pytest.importorskip("torch")
    from lossfns import numerics as nx
    from lossfns._namespace import array_namespace

    x = torch.tensor([0.0, -1e-17, 4.0], dtype=torch.float64, requires_grad=True)
    root = nx.safe_sqrt(array_namespace(x=x), x)
    (grad,) = torch.autograd.grad(root.sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), x)
    np.testing.assert_array_equal(root.detach().numpy(), [0.0, 0.0, 2.0])
    np.testing.assert_allclose(grad.detach().numpy(), [0.0, 0.0, 0.25])
    np.testing.assert_allclose(second.numpy(), [0.0, 0.0, -1 / 32])


# --- segmentation-models-pytorch ------------------------------------------------------------


def _binary_inputs():
    rng = np.random.default_rng(9)
    probs = rng.uniform(size=(3, 1, 5, 4))
    target = (rng.uniform(size=(3, 1, 5, 4)) < 0.4).astype(float)
    return probs, target


def test_smp_mcc_equals_batch_loss_at_zero_epsilon():
    torch = pytest.importorskip("torch")
    smp = smp_losses().MCCLoss(eps=0.0)
    probs, target = _binary_inputs()
    expected = smp(torch.tensor(probs), torch.tensor(target)).item()
    ours = lossfns.mcc_loss(target, probs, epsilon=0.0, batch=True, class_axis=1)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_smp_mcc_adds_its_eps_to_every_term():
    """smp adds eps to TP, TN, FP and FN; ours adds ε to the denominator only (measured)."""
    torch = pytest.importorskip("torch")
    probs, target = _binary_inputs()
    terms = lossfns.confusion_terms(target, probs, batch=True, class_axis=1)
    for eps in (1e-5, 1.0):
        smp = smp_losses().MCCLoss(eps=eps)(torch.tensor(probs), torch.tensor(target)).item()
        shifted = 1 - mcc_value(*(float(t[0]) + eps for t in terms), 0.0)
        np.testing.assert_allclose(smp, shifted, rtol=1e-12)
    ours = float(lossfns.mcc_loss(target, probs, epsilon=1e-5, batch=True, class_axis=1))
    smp = smp_losses().MCCLoss(eps=1e-5)(torch.tensor(probs), torch.tensor(target)).item()
    # 60 elements: the two differ by 1.1e-8 here (1.1e-6 at eps = 1e-3): linear in eps.
    assert 1e-9 < abs(ours - smp) < 1e-7, abs(ours - smp)


def test_smp_mcc_on_constant_inputs():
    """SPEC §21: on a constant input every count but one is 0, so ``TP·TN - FP·FN`` is 0/0.
    smp's eps on each count turns that into MCC ±0.5 (loss 0.5 when the prediction equals
    the labels, 1.5 when it is their opposite); ours is 0/ε = 0 (loss 1) for ε > 0 and, at
    ε = 0, 1 when FP = FN = 0 (loss 0), else 0 (loss 1): a difference of 0.5."""
    torch = pytest.importorskip("torch")
    cases = {(0.0, 0.0): 0.5, (1.0, 1.0): 0.5, (0.0, 1.0): 1.5, (1.0, 0.0): 1.5}
    for (label, prediction), smp_value in cases.items():
        target = torch.full((2, 1, 4, 4), label, dtype=torch.float64)
        probs = torch.full((2, 1, 4, 4), prediction, dtype=torch.float64)
        smp = smp_losses().MCCLoss()(probs, target).item()
        np.testing.assert_allclose(smp, smp_value, atol=1e-6)
        ours = float(lossfns.mcc_loss(target, probs, batch=True, class_axis=1))
        assert ours == 1.0
        at_zero = float(lossfns.mcc_loss(target, probs, batch=True, class_axis=1, epsilon=0.0))
        assert at_zero == (0.0 if label == prediction else 1.0)
        assert abs(ours - smp) == pytest.approx(0.5, abs=1e-6)


# --- Errors ---------------------------------------------------------------------------------


def test_errors_are_named():
    y_true, y_pred = np.zeros((1, 2), dtype=int), np.full((1, 2, 2), 0.5)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        lossfns.mcc_loss(y_true, y_pred, epsilon=-0.1)
    with pytest.raises(ValueError, match="average must be one of"):
        lossfns.mcc_loss(y_true, y_pred, average="samples")
    with pytest.raises(ValueError, match="class_weights has 3 entries but the input has 2 classes"):
        lossfns.mcc_loss(y_true, y_pred, average="weighted", class_weights=(1, 2, 3))
    with pytest.raises(TypeError, match=r"mcc_loss\(\) got an unexpected keyword argument 'gamma'"):
        lossfns.mcc_loss(y_true, y_pred, gamma=2.0)
