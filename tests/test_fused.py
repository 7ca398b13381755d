"""The fused torch path of the confusion sums (``lossfns._fused``) against float64 NumPy.

Values and gradients are checked against the formulas written out in NumPy: the sums
``TP = Σ m·y·p``, ``P = Σ m·p``, ``A = Σ m·y`` and, for ``L = Σ a·TP + b·P``, the
gradient ``m·(b + a·y)``; second derivatives against central differences of the gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lossfns  # noqa: E402
from lossfns.confusion import confusion_sums  # noqa: E402
from lossfns.inputs import prepare  # noqa: E402

B, C, SPATIAL = 2, 4, (5, 6)


def _inputs(seed, *, sparse, mask, out_of_range=False):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(C), size=(B, *SPATIAL)).transpose(0, 3, 1, 2)  # [B, C, H, W]
    labels = rng.integers(0, C, size=(B, *SPATIAL))
    m = rng.uniform(0.0, 1.0, size=(B, *SPATIAL)) if mask else None
    if out_of_range:  # labels the mask leaves out, as a caller may pass without ignore_index
        far = rng.uniform(size=labels.shape) < 0.3
        labels = np.where(far, 255, labels)
        m = np.where(far, 0.0, m)
    onehot = (labels[:, None] == np.arange(C)[None, :, None, None]).astype(np.float64)
    return p, (labels if sparse else onehot), onehot, m


def _reference_sums(p, onehot, m):
    w = np.ones(p.shape[:1] + p.shape[2:]) if m is None else m
    w = w[:, None]
    return [np.sum(x, axis=(2, 3)) for x in (w * onehot * p, w * p, w * onehot)]


# Labels out of [0, C) come only as sparse labels that a mask leaves out.
@pytest.mark.parametrize("sparse, mask, out_of_range", [
    (False, False, False), (False, True, False), (True, False, False), (True, True, False),
    (True, True, True)], ids=["dense", "dense-mask", "sparse", "sparse-mask", "sparse-mask-far-labels"])
def test_sums_and_closed_form_gradient(label_path, sparse, mask, out_of_range):
    p, y, onehot, m = _inputs(0, sparse=sparse, mask=mask, out_of_range=out_of_range)
    p_t = torch.tensor(p, requires_grad=True)
    inputs = prepare(torch.tensor(y), p_t, class_axis=1, mask=None if m is None else torch.tensor(m))
    sums = confusion_sums(inputs)
    assert "ConfusionSums" in type(sums.tp.grad_fn).__name__  # the fused path was taken
    for got, want in zip(sums, _reference_sums(p, onehot, m)):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    a, b = np.random.default_rng(1).normal(size=(2, B, C))
    objective = (sums.tp * torch.tensor(a)).sum() + (sums.predicted * torch.tensor(b)).sum()
    (grad,) = torch.autograd.grad(objective, p_t)
    w = (np.ones((B, *SPATIAL)) if m is None else m)[:, None]
    expected = w * (b[:, :, None, None] + a[:, :, None, None] * onehot)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_batch_reduction_and_channels_last(label_path, sparse):
    p, y, onehot, _ = _inputs(2, sparse=sparse, mask=False)
    p_last = np.moveaxis(p, 1, -1)
    y_last = y if sparse else np.moveaxis(y, 1, -1)
    p_t = torch.tensor(p_last, requires_grad=True)
    sums = confusion_sums(prepare(torch.tensor(y_last), p_t, class_axis=-1, batch=True))
    want = [s.sum(axis=0) for s in _reference_sums(p, onehot, None)]
    for got, expected in zip(sums, want):
        np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12)
    (grad,) = torch.autograd.grad(sums.tp.sum() * 2 + sums.predicted.sum(), p_t)
    np.testing.assert_allclose(grad.numpy(), 1 + 2 * np.moveaxis(onehot, 1, -1), rtol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_double_backward_matches_central_differences(label_path, sparse):
    p, y, _, m = _inputs(3, sparse=sparse, mask=True)
    target = torch.tensor(y)
    mask = torch.tensor(m)

    def gradient(x, create_graph=False):
        x = x.detach().requires_grad_()
        loss = lossfns.tversky_loss(target, x, class_axis=1, mask=mask, alpha=0.3, beta=0.7).sum()
        (g,) = torch.autograd.grad(loss, x, create_graph=create_graph)
        return x, g

    x, g = gradient(torch.tensor(p), create_graph=True)
    direction = torch.tensor(np.random.default_rng(4).normal(size=p.shape))
    (hvp,) = torch.autograd.grad((g * direction).sum(), x)
    h = 1e-5
    plus = gradient(torch.tensor(p) + h * direction)[1]
    minus = gradient(torch.tensor(p) - h * direction)[1]
    central = ((plus - minus) / (2 * h)).numpy()
    assert np.abs(central).max() > 1e-3  # the loss is not linear in p
    np.testing.assert_allclose(hvp.numpy(), central, rtol=1e-5, atol=1e-7)


def test_steps_aside_for_soft_labels_and_target_gradients():
    p, y, _, _ = _inputs(5, sparse=False, mask=False)
    p_t = torch.tensor(p, requires_grad=True)
    soft = confusion_sums(prepare(torch.tensor(y), p_t, class_axis=1, soft_label=True))
    assert "ConfusionSums" not in type(soft.tp.grad_fn).__name__
    y_t = torch.tensor(y, requires_grad=True)
    sums = confusion_sums(prepare(y_t, p_t, class_axis=1))
    (grad_y,) = torch.autograd.grad(sums.tp.sum(), y_t)  # the plain path differentiates y too
    np.testing.assert_allclose(grad_y.numpy(), p, rtol=1e-12)


def test_steps_aside_off_the_cpu():
    from lossfns import _fused

    from array_api_compat import array_namespace

    probs = torch.empty((2, 3, 4), device="meta")  # any non-CPU device, without a GPU
    assert _fused.confusion_sums(array_namespace(probs), probs, activation=None, target=probs, labels=None,
                                 weights=None, reduce_axes=(2,), class_axis=1, soft_label=False) is None


@pytest.fixture(params=["compare", "one-hot", "gather"])
def label_path(request, monkeypatch):
    """Integer labels below ``_fused.SMALL`` elements are compared with every class; above
    it, up to ``_fused.ONE_HOT_CLASSES`` classes become a float one-hot, more are gathered
    and counted: run each test on the three paths."""
    from lossfns import _fused

    monkeypatch.setattr(_fused, "SMALL", 1 << 30 if request.param == "compare" else 0)
    if request.param == "gather":
        monkeypatch.setattr(_fused, "ONE_HOT_CLASSES", 0)
    return request.param


def _softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("sparse, mask, out_of_range", [
    (False, True, False), (True, False, False), (True, True, True)], ids=["dense-mask", "sparse", "sparse-far"])
def test_logits_sums_and_gradient_through_the_activation(label_path, activation, sparse, mask, out_of_range):
    """From logits the activation runs inside the fused function: sums of softmax / sigmoid
    of ``z``, and the gradient of ``Σ a·TP + b·P`` is the activation's Jacobian applied to
    ``m·(b + a·y)`` (an out-of-range label hits no class)."""
    p, y, onehot, m = _inputs(6, sparse=sparse, mask=mask, out_of_range=out_of_range)
    z = np.random.default_rng(7).normal(scale=3.0, size=p.shape)
    z_t = torch.tensor(z, requires_grad=True)
    inputs = prepare(torch.tensor(y), z_t, class_axis=1, from_logits=activation,
                     mask=None if m is None else torch.tensor(m))
    sums = confusion_sums(inputs)
    assert "ConfusionSums" in type(sums.tp.grad_fn).__name__
    probs = _softmax(z) if activation == "softmax" else 1 / (1 + np.exp(-z))
    for got, want in zip(sums, _reference_sums(probs, onehot, m)):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    a, b = np.random.default_rng(8).normal(size=(2, B, C))
    objective = (sums.tp * torch.tensor(a)).sum() + (sums.predicted * torch.tensor(b)).sum()
    (grad,) = torch.autograd.grad(objective, z_t)
    w = (np.ones((B, *SPATIAL)) if m is None else m)[:, None]
    g = w * (b[:, :, None, None] + a[:, :, None, None] * onehot)
    if activation == "softmax":
        expected = probs * (g - (probs * g).sum(axis=1, keepdims=True))
    else:
        expected = g * probs * (1 - probs)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_double_backward_through_logits(label_path, sparse):
    p, y, _, m = _inputs(9, sparse=sparse, mask=True)
    z0 = np.random.default_rng(10).normal(size=p.shape)
    target, mask = torch.tensor(y), torch.tensor(m)

    def gradient(x, create_graph=False):
        x = x.detach().requires_grad_()
        loss = lossfns.dice_loss(target, x, class_axis=1, mask=mask, from_logits=True).sum()
        (g,) = torch.autograd.grad(loss, x, create_graph=create_graph)
        return x, g

    x, g = gradient(torch.tensor(z0), create_graph=True)
    direction = torch.tensor(np.random.default_rng(11).normal(size=p.shape))
    (hvp,) = torch.autograd.grad((g * direction).sum(), x)
    h = 1e-5
    central = ((gradient(torch.tensor(z0) + h * direction)[1] - gradient(torch.tensor(z0) - h * direction)[1])
               / (2 * h)).numpy()
    assert np.abs(central).max() > 1e-3
    np.testing.assert_allclose(hvp.numpy(), central, rtol=1e-5, atol=1e-7)


def test_large_sparse_sums_accumulate_in_float64(label_path):
    """A float32 volume of 2^21 elements per class: the per-class sums stay within float32
    rounding of the float64 ones on both label paths (no sequential float32 drift)."""
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 2, size=(1, 128, 128, 128))
    p = rng.uniform(size=(1, 2, 128, 128, 128)).astype(np.float32)
    sums = confusion_sums(prepare(torch.tensor(labels), torch.tensor(p), class_axis=1))
    onehot = (labels[:, None] == np.arange(2)[None, :, None, None, None])
    expected = (onehot * p.astype(np.float64)).sum(axis=(2, 3, 4))
    np.testing.assert_allclose(sums.tp.numpy(), expected, rtol=2e-6)
