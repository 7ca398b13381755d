"""The contract of the core's signatures and validation (SPEC §2, §8) and the defects of issue 11.

Signatures are compared with defaults written here from the SPEC's tables, not read from the
code; the regression tests each failed on the code before explicit signatures (commit 318a802).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import lossfns
from lossfns import registry

COMMON = {"class_axis": -1, "from_logits": False, "mask": None, "ignore_index": None, "batch": False,
          "validate": False, "all_reduce": None}
REGION = {"average": "macro", "class_weights": None, "include_background": True, "background_index": 0,
          "soft_label": False}
UNIFIED = {"background_index": 0}
SMOOTHING = {"label_smoothing": 0.0}  # §15

#: Hyperparameters and their defaults, from the SPEC's tables (§4-§6).
SPEC_DEFAULTS = {
    "tversky_loss": ({"alpha": 0.3, "beta": 0.7, "epsilon": 1e-5}, REGION),
    "focal_tversky_loss": ({"alpha": 0.3, "beta": 0.7, "gamma": 0.75, "epsilon": 1e-5}, REGION),
    "f1_loss": ({"epsilon": 1e-5, "squared_pred": False}, REGION),  # squared_pred: §21
    "iou_loss": ({"epsilon": 1e-5, "squared_pred": False}, REGION),
    "binary_crossentropy": ({}, SMOOTHING),
    "categorical_crossentropy": ({}, SMOOTHING),
    "binary_focal_loss": ({"alpha": 0.25, "gamma": 2.0}, SMOOTHING),
    "categorical_focal_loss": ({"alpha": None, "gamma": 2.0}, SMOOTHING),
    "combo_loss": ({"alpha": 0.5, "beta": 0.5, "epsilon": 1e-5}, {"background_index": 0, "soft_label": False}),
    "hybrid_focal_loss": ({"weight": 0.5, "focal_alpha": None, "focal_gamma": 2.0, "tversky_alpha": 0.3,
                           "tversky_beta": 0.7, "tversky_gamma": 0.75, "epsilon": 1e-5}, {"soft_label": False}),
    "symmetric_focal_loss": ({"delta": 0.7, "gamma": 2.0}, UNIFIED),
    "asymmetric_focal_loss": ({"delta": 0.7, "gamma": 2.0}, UNIFIED),
    "symmetric_focal_tversky_loss": ({"delta": 0.7, "gamma": 0.75, "epsilon": 1e-7},
                                     {**UNIFIED, "soft_label": False}),
    "asymmetric_focal_tversky_loss": ({"delta": 0.7, "gamma": 0.75, "epsilon": 1e-7},
                                      {**UNIFIED, "soft_label": False}),
    "symmetric_unified_focal_loss": ({"weight": 0.5, "delta": 0.6, "gamma": 0.5, "epsilon": 1e-7},
                                     {**UNIFIED, "soft_label": False}),
    "asymmetric_unified_focal_loss": ({"weight": 0.5, "delta": 0.6, "gamma": 0.5, "epsilon": 1e-7},
                                      {**UNIFIED, "soft_label": False}),
}

SEED_LOSSES = [registry.get(name) for name in SPEC_DEFAULTS]


def _keyword_defaults(function):
    parameters = inspect.signature(function).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values()), f"{function.__name__} takes **kwargs"
    return {n: p.default for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}


@pytest.mark.parametrize("spec", SEED_LOSSES, ids=lambda s: s.name)
def test_signature_lists_every_option_with_the_spec_default(spec):
    hyper, extra = SPEC_DEFAULTS[spec.name]
    assert _keyword_defaults(spec.function) == {**hyper, **extra, **COMMON}
    registry_defaults = {k: d for k, d in spec.defaults.items() if k not in SMOOTHING}
    assert registry_defaults == hyper  # the registry reads the same signature
    assert list(inspect.signature(spec.function).parameters)[:2] == ["y_true", "y_pred"]


@pytest.mark.parametrize("spec", registry.LOSSES, ids=lambda s: s.name)
def test_every_registered_loss_has_an_explicit_signature_and_domains(spec):
    keywords = _keyword_defaults(spec.function)
    assert set(COMMON) - {"ignore_index"} <= set(keywords)
    assert set(keywords) == set(spec.function.domains)
    for name, domain in spec.function.domains.items():
        default = keywords[name]
        if name not in ("mask", "all_reduce") and name not in spec.required:
            assert domain.check(name, default) == default or default is None  # defaults lie in their domains
    for name, value in spec.example_arguments(3).items():  # required ones: their examples do
        assert name in spec.required and domain_of(spec, name).check(name, value) is not None


def domain_of(spec, name):
    return spec.function.domains[name]


def _inputs():
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=(2, 4, 4)), rng.dirichlet(np.ones(3), size=(2, 4, 4))


@pytest.mark.parametrize("call, keyword", [
    (lossfns.dice_loss, "gamma"), (lossfns.tversky_loss, "delta"), (lossfns.dice_loss, "binary_loss"),
    (lossfns.categorical_crossentropy, "soft_label"), (lossfns.binary_crossentropy, "alpha"),
])
def test_unknown_keyword_names_the_public_function(call, keyword):
    y_true, y_pred = _inputs()
    with pytest.raises(TypeError, match=rf"^{call.__name__}\(\) got an unexpected keyword argument '{keyword}'"):
        call(y_true, y_pred, **{keyword: 2})


@pytest.mark.parametrize("name, arguments, message", [
    ("f1_loss", {"class_weights": [math.nan, 1, 1], "average": "weighted"}, "class_weights[0] must be a finite"),
    ("f1_loss", {"class_weights": [math.inf, 1, 1], "average": "weighted"}, "class_weights[0] must be a finite"),
    ("categorical_focal_loss", {"alpha": [math.nan, 1, 1]}, "alpha[0] must be a finite"),
    ("tversky_loss", {"epsilon": math.inf}, "epsilon must be a finite"),
    ("binary_focal_loss", {"gamma": math.nan}, "gamma must be a finite"),
    ("symmetric_unified_focal_loss", {"gamma": 1.5}, "gamma must lie in [0, 1]"),
    ("binary_crossentropy", {"from_logits": "softmax"}, "from_logits='softmax' is not valid for a binary loss"),
    ("f1_loss", {"average": "mean"}, "average must be one of"),
    ("f1_loss", {"class_weights": [1, 1]}, "class_weights has 2 entries but the input has 3 classes"),
    ("combo_loss", {"background_index": 3}, "background_index 3 is out of range for 3 classes"),
])
def test_one_message_from_the_core_and_the_registry(name, arguments, message):
    """The same bad argument reads the same from the core function and the registry spec."""
    y_true, y_pred = _inputs()
    spec = registry.get(name)
    with pytest.raises((ValueError, TypeError)) as core:
        spec.function(y_true, y_pred, **arguments)
    assert message in str(core.value)
    if "entries" in message or "out of range" in message:
        return  # needs the data's shape: checked by the core only
    with pytest.raises(type(core.value)) as from_registry:
        spec.validate(**arguments)
    assert str(from_registry.value) == str(core.value)


def test_every_argument_is_checked_before_any_array_work(monkeypatch):
    """A bad option is reported before log-softmax (or anything else) touches the data."""
    from lossfns import numerics

    def no_array_work(*args, **kwargs):
        raise AssertionError("array work before the arguments were checked")

    monkeypatch.setattr(numerics, "log_softmax", no_array_work)
    monkeypatch.setattr(numerics, "blocked_sum", no_array_work)
    y_true, y_pred = _inputs()
    bad = [{"average": "mean"}, {"include_background": 1}, {"class_weights": [1.0]},
           {"background_index": 7}, {"soft_label": "yes"}, {"class_axis": 5}]
    for arguments in bad:
        with pytest.raises((ValueError, TypeError), match=next(iter(arguments))):
            lossfns.f1_loss(y_true, y_pred, from_logits=True, **arguments)


def test_complex_labels_are_rejected():
    y_true, y_pred = _inputs()
    with pytest.raises(TypeError, match="y_true must have a real or bool dtype"):
        lossfns.dice_loss(np.eye(3)[y_true].astype(np.complex128), y_pred)


# Regression tests of issue 11, §3 (each failed before explicit signatures).

def _tversky_reference(labels, probs, alpha=0.3, beta=0.7, epsilon=1e-5):
    onehot = np.eye(probs.shape[-1])[labels]
    tp = (onehot * probs).sum(axis=tuple(range(1, probs.ndim - 1)))
    fp = ((1 - onehot) * probs).sum(axis=tuple(range(1, probs.ndim - 1)))
    fn = (onehot * (1 - probs)).sum(axis=tuple(range(1, probs.ndim - 1)))
    return (1 - (tp + epsilon) / (tp + alpha * fp + beta * fn + epsilon)).mean(axis=-1)


def test_no_spatial_axes_in_torch_counts_per_sample():
    """[batch, classes] with labels [batch]: torch's sum over an empty axis tuple sums everything."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    labels, probs = rng.integers(0, 3, size=4), rng.dirichlet(np.ones(3), size=4)
    expected = _tversky_reference(labels, probs)
    actual = lossfns.tversky_loss(torch.from_numpy(labels), torch.from_numpy(probs)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "binary_crossentropy", "categorical_focal_loss",
                                  "asymmetric_unified_focal_loss", "hybrid_focal_loss"])
def test_empty_spatial_axes_give_a_finite_loss(name):
    """No element at all: Σ m = 0, so the mean terms are 0 (the region terms a perfect score)."""
    y_pred = np.zeros((2, 0, 3))
    y_true = np.zeros((2, 0, 3))
    value = registry.get(name).function(y_true, y_pred)
    assert np.all(np.isfinite(value)), value


def test_float_labels_without_a_class_axis_are_the_binary_target():
    rng = np.random.default_rng(4)
    y_pred = rng.uniform(size=(2, 4, 4, 1))
    y_true = (rng.uniform(size=(2, 4, 4)) > 0.5).astype(np.float32)
    for name in ("dice_loss", "binary_crossentropy", "binary_focal_loss", "tversky_loss"):
        function = registry.get(name).function
        np.testing.assert_allclose(function(y_true, y_pred), function(y_true[..., None], y_pred), rtol=1e-12)


def test_a_mask_broadcasts_like_numpy():
    """A (H, W) mask weighs every sample alike, as its broadcast (B, H, W) does."""
    y_true, y_pred = _inputs()
    mask = np.random.default_rng(5).uniform(size=(4, 4))
    for name in ("dice_loss", "categorical_crossentropy"):
        function = registry.get(name).function
        np.testing.assert_allclose(function(y_true, y_pred, mask=mask),
                                   function(y_true, y_pred, mask=np.broadcast_to(mask, (2, 4, 4))), rtol=1e-12)


def test_whole_exponents_compute_one_minus_ti_as_written():
    """Inputs outside [0, 1] can give TI > 1; γ = 1 (and 2) must not clamp 1 − TI at 0."""
    y_pred = np.array([[[1.5, 0.0], [0.0, 1.0]]])
    y_true = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    tp, fp, fn = np.array([1.5, 1.0]), np.array([0.0, 0.0]), np.array([-0.5, 0.0])
    ti = tp / (tp + 0.3 * fp + 0.7 * fn)
    np.testing.assert_allclose(lossfns.tversky_loss(y_true, y_pred, epsilon=0.0), [np.mean(1 - ti)], rtol=1e-12)
    np.testing.assert_allclose(lossfns.focal_tversky_loss(y_true, y_pred, gamma=2.0, epsilon=0.0),
                               [np.mean((1 - ti) ** 2)], rtol=1e-12)
    # A fractional power keeps the clamp: max(1 - TI, 0) ** 0.75.
    np.testing.assert_allclose(lossfns.focal_tversky_loss(y_true, y_pred, epsilon=0.0),
                               [np.mean(np.maximum(1 - ti, 0) ** 0.75)], rtol=1e-12)


ADAPTER_CASES = [
    ("f1_loss", {"class_weights": [math.nan, 1, 1]}),
    ("categorical_focal_loss", {"alpha": [math.nan, 1, 1]}),
    ("tversky_loss", {"epsilon": math.inf}),
    ("symmetric_unified_focal_loss", {"gamma": 1.5}),
    ("binary_crossentropy", {"from_logits": "softmax"}),
    ("f1_loss", {"average": "mean"}),
    ("hybrid_focal_loss", {"focal_gamma": -1.0}),
    ("combo_loss", {"alpha": 2}),
]


def _adapter_error(framework, spec, arguments):
    """The error an adapter raises for ``arguments``, at construction (torch, Keras) or call (JAX)."""
    module = pytest.importorskip(f"lossfns.adapters.{framework}")
    y_true, y_pred = _inputs()
    with pytest.raises((ValueError, TypeError)) as error:
        if framework == "jax":
            getattr(module, spec.name)(y_pred, y_true, **arguments)
        else:
            getattr(module, spec.class_name)(**arguments)
    return error.value


@pytest.mark.parametrize("framework", ["torch", "keras", "jax"])
@pytest.mark.parametrize("name, arguments", ADAPTER_CASES, ids=[f"{n}-{next(iter(a))}" for n, a in ADAPTER_CASES])
def test_one_message_from_every_adapter(framework, name, arguments):
    spec = registry.get(name)
    y_true, y_pred = _inputs()
    with pytest.raises((ValueError, TypeError)) as core:
        spec.function(y_true, y_pred, **arguments)
    error = _adapter_error(framework, spec, arguments)
    assert (type(error), str(error)) == (type(core.value), str(core.value))
