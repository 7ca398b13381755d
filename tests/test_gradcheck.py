"""Gradients of every loss against finite differences (PyTorch) and PyTorch against JAX (float64).

``torch.autograd.gradcheck`` compares the autodiff gradient with central differences at
random interior points: probabilities in (0.05, 0.95), soft labels in (0, 1), logits of
moderate size, mask weights in (0.1, 1). There no clip, guard or ``where`` of the core is
active, so the loss is smooth and finite differences are a valid reference. JAX's gradient
must agree with PyTorch's to 1e-10 (SPEC §9), so it matches the finite differences too: a
second finite-difference pass in JAX (``check_grads``, 70 s of the suite) checked nothing more.

Each loss runs in three configurations that together cover dense and sparse labels,
probabilities and both logit activations, masks, ``batch=True``, a non-default class
axis, a single channel and the region averages.
"""

from __future__ import annotations

import numpy as np
import pytest

from lossfns.registry import LOSSES

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

#: name -> (y_pred shape, label kind, options, region options). Shapes are fixed so that
#: JAX compiles each operation once per configuration, not once per loss.
CONFIGS = {
    "dense-soft-mask": ((2, 3, 3), "soft", {"from_logits": False}, {"average": "weighted"}),
    "sparse-logits-axis1": ((2, 4, 2, 3), "sparse", {"from_logits": True, "class_axis": 1},
                            {"average": "micro", "include_background": False}),
    "one-channel-sigmoid-batch": ((3, 4, 1), "binary", {"from_logits": "sigmoid", "batch": True}, {}),
}


def interior_inputs(config: str, seed: int):
    """``(y_true, y_pred, mask, options)`` away from every guarded point."""
    shape, labels, options, region = CONFIGS[config]
    rng = np.random.default_rng(seed)
    class_axis = options.get("class_axis", -1) % len(shape)
    elements = shape[:class_axis] + shape[class_axis + 1:]
    if options["from_logits"] is False:
        y_pred = rng.uniform(0.05, 0.95, size=shape)
    else:
        y_pred = rng.normal(scale=1.5, size=shape)
    if labels == "soft":
        y_true = rng.uniform(0.05, 0.95, size=shape)
        y_true = y_true / y_true.sum(axis=class_axis, keepdims=True)
    elif labels == "sparse":
        y_true = rng.integers(0, shape[class_axis], size=elements)
    else:
        y_true = (rng.random(shape) < 0.5).astype(np.float64)
    mask = rng.uniform(0.1, 1.0, size=elements)
    return y_true, y_pred, mask, options, region


def loss_inputs(spec, config: str):
    y_true, y_pred, mask, options, region = interior_inputs(config, seed=len(spec.name) * 7 + len(config))
    kwargs = dict(options, **(region if spec.family == "region" else {}))
    rng = np.random.default_rng(len(config))
    if spec.logits_only:  # the Lovász hinge: y_pred holds logits in every configuration
        kwargs["from_logits"] = kwargs["from_logits"] or True
    if spec.target_kind == "distance_maps":  # the boundary loss: signed distances, not labels
        y_true = rng.normal(scale=2.0, size=y_pred.shape)
    if spec.target_kind == "skeletons" and y_true.dtype.kind == "f":  # label maps, never soft
        class_axis = kwargs.get("class_axis", -1)
        y_true = (np.argmax(y_true, axis=class_axis) if y_true.shape[class_axis] > 1
                  else y_true.astype(np.int64))
    classes = y_pred.shape[kwargs.get("class_axis", -1)]
    kwargs.update(spec.example_arguments(classes))
    if spec.family == "cldice" and y_true.dtype.kind == "f":
        # The skeleton of 0/1 labels is full of min/max ties, where it has no derivative in
        # the labels: move them inside (0, 1), away from ties.
        y_true = np.abs(y_true - rng.uniform(0.05, 0.3, size=y_true.shape))
    return y_true, y_pred, mask, kwargs


def _loss_of(spec, y_true, mask, kwargs, *, differentiate_labels):
    if differentiate_labels:
        return lambda labels, pred: spec.function(labels, pred, mask=mask, **kwargs)
    return lambda pred: spec.function(y_true, pred, mask=mask, **kwargs)


def _ids(items):
    return [f"{spec.name}-{config}" for spec, config in items]


ALL = [(spec, config) for spec in LOSSES for config in CONFIGS]


@pytest.mark.parametrize("spec, config", ALL, ids=_ids(ALL))
def test_torch_gradcheck(spec, config):
    y_true, y_pred, mask, kwargs = loss_inputs(spec, config)
    dense = y_true.dtype.kind == "f"
    pred = torch.from_numpy(y_pred).requires_grad_(True)
    labels = torch.from_numpy(y_true).requires_grad_(dense)  # soft labels are differentiable too
    fn = _loss_of(spec, labels, torch.from_numpy(mask), kwargs, differentiate_labels=dense)
    args = (labels, pred) if dense else (pred,)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("spec, config", ALL, ids=_ids(ALL))
def test_torch_and_jax_gradients_agree(spec, config):
    y_true, y_pred, mask, kwargs = loss_inputs(spec, config)
    jnp = jax.numpy
    # A random cotangent per sample, so that samples are not all weighted alike.
    cotangent = np.random.default_rng(0).uniform(0.5, 2.0, size=y_pred.shape[:1])

    pred = torch.from_numpy(y_pred).requires_grad_(True)
    value = spec.function(torch.from_numpy(y_true), pred, mask=torch.from_numpy(mask), **kwargs)
    weights = torch.from_numpy(cotangent) if value.ndim else torch.tensor(1.0, dtype=torch.float64)
    (value * weights).sum().backward()

    def weighted_sum(p):
        v = spec.function(jnp.asarray(y_true), p, mask=jnp.asarray(mask), **kwargs)
        return jnp.sum(v * (jnp.asarray(cotangent) if v.ndim else 1.0))

    jax_value, jax_grad = jax.value_and_grad(weighted_sum)(jnp.asarray(y_pred))
    np.testing.assert_allclose(float(jax_value), float((value * weights).sum().detach()), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(jax_grad), pred.grad.numpy(), rtol=1e-10, atol=1e-14)
