"""Region losses (SPEC §4) against the float64 NumPy reference, invariants, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference_region import REFERENCES, random_inputs

import lossfns

REGION_LOSSES = ("tversky_loss", "focal_tversky_loss", "f1_loss", "dice_loss", "iou_loss", "jaccard_loss")

#: (loss, hyperparameters) run on every comparison case; covers γ < 1, γ > 1 and ε = 0.
LOSS_SETTINGS = (
    ("tversky_loss", {"alpha": 0.6, "beta": 0.2, "epsilon": 1e-3}),
    ("focal_tversky_loss", {}),
    ("focal_tversky_loss", {"gamma": 2.0, "alpha": 0.5, "beta": 0.9, "epsilon": 0.0}),
    ("dice_loss", {"epsilon": 0.1}),
    ("jaccard_loss", {}),
)

# Each case mixes several options so that every spatial rank, label kind, average, mask,
# batch, class axis and from_logits value is covered without a full cartesian product.
# Spatial shapes are reused (one per rank) because JAX compiles every new shape eagerly.
S0, S1, S2, S3 = (), (6,), (4, 3), (2, 3, 2)
CASES = {
    "0d-onehot-macro": dict(spatial=S0),
    "0d-sparse-weighted-mask": dict(spatial=S0, labels="sparse", mask=True, average="weighted"),
    "1d-soft-micro": dict(spatial=S1, labels="soft", average="micro"),
    "1d-sparse_unit-axis1-logits": dict(spatial=S1, labels="sparse_unit", class_axis=1, from_logits=True),
    "1d-bool-batch-weighted": dict(spatial=S1, labels="bool", batch=True, average="weighted"),
    "2d-onehot-weights": dict(spatial=S2, average="weighted", class_weights=(0.2, 0.5, 1.5)),
    "2d-sparse-mask-batch": dict(spatial=S2, labels="sparse", mask=True, batch=True),
    "2d-axis1-softmax-no-background": dict(spatial=S2, class_axis=1, from_logits="softmax",
                                           include_background=False),
    "2d-multilabel-sigmoid-micro-batch": dict(spatial=S2, labels="soft", from_logits="sigmoid",
                                              average="micro", batch=True),
    "2d-one-channel-logits": dict(spatial=S2, num_classes=1, from_logits=True, mask=True),
    "2d-one-channel-label-map": dict(spatial=S2, num_classes=1, labels="sparse", average="weighted"),
    "2d-sparse-ignore-weighted-mask": dict(spatial=S2, labels="sparse", ignore_index=255, mask=True,
                                           average="weighted"),
    "2d-int-onehot-axis-2": dict(spatial=S2, labels="onehot_int", class_axis=-2, average="micro"),
    "3d-onehot-mask": dict(spatial=S3, mask=True),
    "3d-sparse-axis1-background2-batch": dict(
        spatial=S3, labels="sparse", class_axis=1, include_background=False, background_index=2,
        average="weighted", class_weights=(3.0, 0.5, 9.0), batch=True),
    "3d-sparse_unit-middle-axis-logits-micro": dict(spatial=S3, labels="sparse_unit", class_axis=2,
                                                    from_logits=True, average="micro", mask=True),
    "3d-empty-class-support": dict(spatial=S3, empty_class=True, average="weighted"),
    "3d-sparse-empty-class-no-background": dict(spatial=S3, labels="sparse", empty_class=True,
                                                include_background=False, background_index=-1),
}

_INPUT_KEYS = ("spatial", "num_classes", "batch_size", "labels", "mask", "ignore_index", "empty_class")


def _split_case(case):
    """``random_inputs`` arguments and the loss options of a case."""
    make = {k: case[k] for k in _INPUT_KEYS if k in case}
    options = {k: v for k, v in case.items() if k not in _INPUT_KEYS}
    make["class_axis"] = options.get("class_axis", -1)
    make["logits"] = options.get("from_logits", False) is not False
    return make, options


def _call(xp, name, y_true, y_pred, mask=None, dtype=np.float64, **kwargs):
    """Run ``lossfns.<name>`` on backend ``xp`` with float arrays in ``dtype``."""
    def convert(a):
        if a is None:
            return None
        return xp.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)

    return getattr(lossfns, name)(convert(y_true), convert(y_pred), mask=convert(mask), **kwargs)


def _tolerance(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


# Every case in float64; every other case in float32 too (JAX compiles each dtype anew).
DTYPE_CASES = [pytest.param(case, np.float64, id=f"{case}-float64") for case in CASES] + [
    pytest.param(case, np.float32, id=f"{case}-float32") for case in list(CASES)[1::2]]


@pytest.mark.parametrize("case,dtype", DTYPE_CASES)
def test_matches_reference(xp, case, dtype):
    make, options = _split_case(CASES[case])
    y_true, y_pred, mask = random_inputs(sum(map(ord, case)), **make)
    if dtype == np.float32:  # the reference sees exactly the float32 inputs
        y_pred = y_pred.astype(np.float32)
        y_true = y_true.astype(np.float32) if y_true.dtype.kind == "f" else y_true
        mask = None if mask is None else mask.astype(np.float32)
    for name, hyper in LOSS_SETTINGS:
        expected = REFERENCES[name](y_true, y_pred, mask=mask, **hyper, **options)
        result = _call(xp, name, y_true, y_pred, mask, dtype=dtype, **hyper, **options)
        got = xp.to_numpy(result)
        assert got.dtype == dtype, name
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, **_tolerance(dtype), err_msg=f"{name} {hyper}")


# --- Invariants ------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["onehot", "sparse"])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_perfect_prediction_is_zero(xp, average, labels):
    y_true, _, mask = random_inputs(1, spatial=S2, labels=labels, mask=True,
                                    empty_class=True)
    dense = y_true if labels == "onehot" else (y_true[..., None] == np.arange(3)).astype(np.float64)
    for name in REGION_LOSSES:
        for epsilon in (1e-5, 0.0):
            for batch in (False, True):
                loss = _call(xp, name, y_true, dense, mask, epsilon=epsilon, average=average, batch=batch)
                np.testing.assert_allclose(xp.to_numpy(loss), 0.0, atol=1e-12, err_msg=f"{name} ε={epsilon}")


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_special_cases_of_tversky(xp, average):
    y_true, y_pred, mask = random_inputs(2, spatial=S2, labels="soft", mask=True)
    common = dict(average=average, epsilon=0.01)
    tversky = {ab: xp.to_numpy(_call(xp, "tversky_loss", y_true, y_pred, mask, alpha=ab[0], beta=ab[1], **common))
               for ab in ((0.5, 0.5), (1.0, 1.0), (0.3, 0.7))}
    for name, ab in (("f1_loss", (0.5, 0.5)), ("dice_loss", (0.5, 0.5)),
                     ("iou_loss", (1.0, 1.0)), ("jaccard_loss", (1.0, 1.0))):
        np.testing.assert_allclose(xp.to_numpy(_call(xp, name, y_true, y_pred, mask, **common)),
                                   tversky[ab], rtol=1e-12, err_msg=name)
    focal = _call(xp, "focal_tversky_loss", y_true, y_pred, mask, gamma=1.0, alpha=0.3, beta=0.7, **common)
    np.testing.assert_allclose(xp.to_numpy(focal), tversky[(0.3, 0.7)], rtol=1e-12)


@pytest.mark.parametrize("labels", ["onehot", "sparse_unit"])
def test_class_axis_position_does_not_matter(xp, labels):
    y_true, y_pred, mask = random_inputs(3, spatial=S3, labels=labels, mask=True)
    for name in ("focal_tversky_loss", "dice_loss"):
        last = xp.to_numpy(_call(xp, name, y_true, y_pred, mask, average="weighted"))
        for axis in (1, 2, -2, 3):
            moved = xp.to_numpy(_call(xp, name, np.moveaxis(y_true, -1, axis), np.moveaxis(y_pred, -1, axis),
                                      mask, average="weighted", class_axis=axis))
            np.testing.assert_allclose(moved, last, rtol=1e-12, err_msg=f"{name} class_axis={axis}")


@pytest.mark.parametrize("batch", [False, True])
def test_zero_mask_equals_cropping(xp, batch):
    y_true, y_pred, _ = random_inputs(4, spatial=S2, labels="onehot")
    mask = np.ones(y_pred.shape[:-1])
    mask[:, 2:, :] = 0.0
    for name in REGION_LOSSES:
        for average in ("macro", "micro", "weighted"):
            masked = _call(xp, name, y_true, y_pred, mask, average=average, batch=batch)
            cropped = _call(xp, name, y_true[:, :2], y_pred[:, :2], average=average, batch=batch)
            np.testing.assert_allclose(xp.to_numpy(masked), xp.to_numpy(cropped), rtol=1e-12, err_msg=name)


def test_sparse_labels_equal_their_one_hot(xp):
    labels, y_pred, mask = random_inputs(5, spatial=S2, labels="sparse", mask=True)
    onehot = (labels[..., None] == np.arange(3)).astype(np.float64)
    for name in REGION_LOSSES:
        for options in ({"average": "weighted"}, {"average": "micro", "batch": True},
                        {"include_background": False, "from_logits": True}):
            sparse = _call(xp, name, labels, y_pred, mask, **options)
            unit = _call(xp, name, labels[..., None], y_pred, mask, **options)
            dense = _call(xp, name, onehot, y_pred, mask, **options)
            np.testing.assert_allclose(xp.to_numpy(sparse), xp.to_numpy(dense), rtol=1e-12, err_msg=name)
            np.testing.assert_allclose(xp.to_numpy(unit), xp.to_numpy(dense), rtol=1e-12, err_msg=name)


def test_ignore_index_equals_masking(xp):
    labels, y_pred, mask = random_inputs(6, spatial=S2, labels="sparse", ignore_index=255, mask=True)
    ignored = labels == 255
    assert ignored.any() and not ignored.all()
    relabelled = np.where(ignored, 0, labels)
    for name in REGION_LOSSES:
        for average in ("macro", "micro", "weighted"):
            with_ignore = _call(xp, name, labels, y_pred, mask, ignore_index=255, average=average)
            masked = _call(xp, name, relabelled, y_pred, mask * ~ignored, average=average)
            np.testing.assert_allclose(xp.to_numpy(with_ignore), xp.to_numpy(masked), rtol=1e-12, err_msg=name)


# --- Distributed batch losses: additivity of the confusion terms ----------------------------


def _tversky_from_terms(tp, fp, fn, alpha, beta, epsilon):
    return np.mean(1.0 - (tp + epsilon) / (tp + alpha * fp + beta * fn + epsilon), axis=-1)


@pytest.mark.parametrize("labels", ["onehot", "sparse"])
def test_summed_shard_terms_give_the_batch_loss(xp, labels):
    y_true, y_pred, mask = random_inputs(7, spatial=S2, batch_size=5, labels=labels, mask=True)
    shards = (slice(0, 2), slice(2, 3), slice(3, 5))
    terms = [lossfns.confusion_terms(xp.asarray(y_true[s]), xp.asarray(y_pred[s]), mask=xp.asarray(mask[s]),
                                     batch=True) for s in shards]
    tp, fp, fn = (sum(xp.to_numpy(getattr(t, k)) for t in terms) for k in ("tp", "fp", "fn"))
    whole = _call(xp, "tversky_loss", y_true, y_pred, mask, alpha=0.4, beta=0.8, epsilon=0.5, batch=True)
    assert xp.to_numpy(whole).shape == ()
    np.testing.assert_allclose(xp.to_numpy(whole), _tversky_from_terms(tp, fp, fn, 0.4, 0.8, 0.5), rtol=1e-12)


def test_identity_all_reduce_changes_nothing(xp):
    y_true, y_pred, mask = random_inputs(8, labels="sparse", mask=True)
    for name in REGION_LOSSES:
        plain = _call(xp, name, y_true, y_pred, mask, batch=True, average="weighted")
        reduced = _call(xp, name, y_true, y_pred, mask, batch=True, average="weighted", all_reduce=lambda s: s)
        np.testing.assert_allclose(xp.to_numpy(reduced), xp.to_numpy(plain), rtol=1e-12, err_msg=name)


def test_all_reduce_over_two_replicas_gives_the_global_batch_loss(xp):
    """Replica B's statistics are recorded, then replica A's all-reduce adds them in order."""
    y_true, y_pred, mask = random_inputs(9, spatial=S2, labels="onehot", mask=True)
    a, b = slice(0, 1), slice(1, 3)
    for name in REGION_LOSSES:
        options = dict(batch=True, average="micro", epsilon=0.3)
        recorded = []
        _call(xp, name, y_true[b], y_pred[b], mask[b], all_reduce=lambda s: recorded.append(s) or s, **options)
        assert recorded, "all_reduce was never called"
        replica_b = iter(recorded)
        combined = _call(xp, name, y_true[a], y_pred[a], mask[a], all_reduce=lambda s: s + next(replica_b),
                         **options)
        whole = _call(xp, name, y_true, y_pred, mask, **options)
        np.testing.assert_allclose(xp.to_numpy(combined), xp.to_numpy(whole), rtol=1e-12, err_msg=name)


def test_all_reduce_needs_batch(xp):
    y_true, y_pred, _ = random_inputs(10)
    with pytest.raises(ValueError, match="all_reduce"):
        _call(xp, "dice_loss", y_true, y_pred, all_reduce=lambda s: s)


# --- Gradients -------------------------------------------------------------------------------


def _gradient_inputs(scenario):
    """``(y_true, y_pred, mask, options)`` for one hard case of SPEC §9."""
    y_true, y_pred, mask = random_inputs(11, spatial=S2, labels="onehot", mask=True)
    options = {}
    if scenario == "perfect":
        y_pred = y_true.copy()
    elif scenario == "perfect-sparse-logits":
        y_true = np.argmax(y_true, -1)
        y_pred = np.where(y_true[..., None] == np.arange(3), 1e4, -1e4)
        options = {"from_logits": True}
    elif scenario == "empty-class":
        y_true[..., 1] += y_true[..., 2]
        y_true[..., 2] = 0.0
    elif scenario == "all-zero-targets":
        y_true = np.zeros_like(y_true)
    elif scenario == "all-zero-targets-and-predictions":
        y_true, y_pred = np.zeros_like(y_true), np.zeros_like(y_pred)
    elif scenario == "fully-masked-sample":
        mask[0] = 0.0
    elif scenario == "fully-masked-batch":
        mask[:] = 0.0
    return y_true, y_pred, mask, options


GRADIENT_SCENARIOS = ("perfect", "perfect-sparse-logits", "empty-class", "all-zero-targets",
                      "all-zero-targets-and-predictions", "fully-masked-sample", "fully-masked-batch")
#: (gamma, epsilon, average, batch) of focal_tversky_loss: fractional, integer and zero
#: exponents, ε = 0, every average, per sample and over the batch.
GRADIENT_SETTINGS = (
    (0.25, 0.0, "weighted", False), (0.5, 1e-5, "micro", True), (0.75, 0.0, "macro", True),
    (1.0, 0.0, "weighted", True), (2.0, 1e-5, "micro", False), (0.0, 1e-5, "macro", False),
)


def _torch_gradient(y_true, y_pred, mask, **kwargs):
    torch = pytest.importorskip("torch")
    pred = torch.tensor(y_pred, dtype=torch.float64, requires_grad=True)
    loss = lossfns.focal_tversky_loss(torch.as_tensor(y_true), pred, mask=torch.as_tensor(mask), **kwargs)
    assert loss.requires_grad, f"the loss is detached from y_pred ({kwargs})"
    loss.sum().backward()
    return loss.detach().numpy(), pred.grad.numpy()


def _jax_gradient(y_true, y_pred, mask, **kwargs):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def total(pred):
        loss = lossfns.focal_tversky_loss(jnp.asarray(y_true), pred, mask=jnp.asarray(mask), **kwargs)
        return jnp.sum(loss), loss

    (_, loss), grad = jax.value_and_grad(total, has_aux=True)(jnp.asarray(y_pred, dtype=jnp.float64))
    return np.asarray(loss), np.asarray(grad)


GRADIENT_FUNCTIONS = {"torch": _torch_gradient, "jax": _jax_gradient}


@pytest.mark.parametrize("framework", list(GRADIENT_FUNCTIONS))
@pytest.mark.parametrize("scenario", GRADIENT_SCENARIOS)
def test_gradients_are_finite(framework, scenario):
    y_true, y_pred, mask, options = _gradient_inputs(scenario)
    for gamma, epsilon, average, batch in GRADIENT_SETTINGS:
        loss, grad = GRADIENT_FUNCTIONS[framework](y_true, y_pred, mask, gamma=gamma, epsilon=epsilon,
                                                  average=average, batch=batch, **options)
        where = f"γ={gamma} ε={epsilon} {average}"
        assert np.all(np.isfinite(loss)), where
        assert np.all(np.isfinite(grad)), where
        if scenario.startswith("perfect") and gamma > 0:
            np.testing.assert_allclose(loss, 0.0, atol=1e-12, err_msg=where)
        if gamma == 0:  # (1 - TI)**0 is the constant 1: still a loss with a (zero) gradient
            np.testing.assert_allclose(loss, 1.0, rtol=1e-12, err_msg=where)
            np.testing.assert_array_equal(grad, 0.0, err_msg=where)


@pytest.mark.parametrize("options", [
    dict(gamma=0.5, average="macro"),
    dict(gamma=2.0, alpha=0.7, beta=0.2, average="weighted", from_logits=True),
    dict(gamma=1.0, average="micro", batch=True, include_background=False),
    dict(gamma=0.75, average="weighted", class_weights=(0.1, 2.0, 1.0), from_logits="sigmoid", epsilon=0.0),
], ids=["macro", "weighted-logits", "micro-batch", "weighted-sigmoid"])
@pytest.mark.parametrize("labels", ["onehot", "sparse"])
def test_torch_and_jax_gradients_agree(options, labels):
    y_true, y_pred, mask = random_inputs(12, spatial=S2, labels=labels, mask=True,
                                         logits="from_logits" in options)
    torch_loss, torch_grad = _torch_gradient(y_true, y_pred, mask, **options)
    jax_loss, jax_grad = _jax_gradient(y_true, y_pred, mask, **options)
    np.testing.assert_allclose(torch_loss, jax_loss, rtol=1e-10)
    np.testing.assert_allclose(torch_grad, jax_grad, rtol=1e-10, atol=1e-13)
    assert np.abs(torch_grad).max() > 0


# --- Half precision --------------------------------------------------------------------------


def _half(framework, dtype_name):
    """``(to_half, to_float32_numpy)`` converters for a framework and a 16-bit dtype."""
    if framework == "numpy":
        return (lambda a: a.astype(dtype_name)), (lambda x: np.asarray(x, dtype=np.float32))
    if framework == "torch":
        torch = pytest.importorskip("torch")
        return ((lambda a: torch.from_numpy(a).to(getattr(torch, dtype_name))),
                (lambda x: x.float().numpy()))
    if framework == "jax":
        jnp = pytest.importorskip("jax").numpy
        return (lambda a: jnp.asarray(a, dtype=dtype_name)), (lambda x: np.asarray(x.astype(jnp.float32)))
    tf = pytest.importorskip("tensorflow")
    return (lambda a: tf.cast(tf.constant(a), dtype_name)), (lambda x: tf.cast(x, tf.float32).numpy())


@pytest.mark.parametrize("framework,dtype_name", [
    ("numpy", "float16"), ("torch", "float16"), ("torch", "bfloat16"), ("jax", "float16"),
    ("jax", "bfloat16"), ("tensorflow", "float16"), ("tensorflow", "bfloat16"),
])
@pytest.mark.parametrize("labels", ["onehot", "sparse"])
def test_half_precision_returns_float32(framework, dtype_name, labels):
    y_true, y_pred, mask = random_inputs(13, spatial=S2, labels=labels, mask=True)
    to_half, to_float32 = _half(framework, dtype_name)
    pred_half = to_half(y_pred.astype(np.float32))
    true_half = to_half(y_true.astype(np.float32)) if labels == "onehot" else _integer_labels(framework, y_true)
    mask_half = to_half(mask.astype(np.float32))
    rounded = to_float32(pred_half)
    rounded_mask = to_float32(mask_half)
    for name in ("focal_tversky_loss", "dice_loss", "iou_loss"):
        loss = getattr(lossfns, name)(true_half, pred_half, mask=mask_half, average="weighted")
        assert "float32" in str(loss.dtype), f"{name} returned {loss.dtype}"
        got = to_float32(loss)
        # Same 16-bit inputs, accumulated in float32: as close as a float32 computation.
        expected = REFERENCES[name](y_true, rounded, mask=rounded_mask, average="weighted")
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)
        # And within half-precision rounding of the unrounded float32 result.
        unrounded = REFERENCES[name](y_true, y_pred.astype(np.float32), mask=mask, average="weighted")
        np.testing.assert_allclose(got, unrounded, atol=1e-2, err_msg=name)


def _integer_labels(framework, labels):
    if framework == "numpy":
        return labels
    if framework == "torch":
        return pytest.importorskip("torch").from_numpy(labels)
    if framework == "jax":
        return pytest.importorskip("jax").numpy.asarray(labels)
    return pytest.importorskip("tensorflow").constant(labels)


# --- Errors (SPEC §8) ------------------------------------------------------------------------


def _bad(name="tversky_loss", y_true=None, y_pred=None, **options):
    return name, y_true, y_pred, options


_Y, _P, _ = random_inputs(14, spatial=S2)
_LABELS = np.argmax(_Y, -1)

ERROR_CASES = {
    "shapes": (_bad(y_true=np.zeros((3, 4, 3, 2))), ValueError, "y_true shape"),
    "sparse-shape": (_bad(y_true=_LABELS[:, :3]), ValueError, "y_true shape"),
    "integer-y_pred": (_bad(y_pred=_Y.astype(np.int32)), TypeError, "y_pred"),
    "class_weights-length": (_bad(average="weighted", class_weights=(1.0, 2.0)), ValueError, "class_weights"),
    "class_weights-negative": (_bad(average="weighted", class_weights=(1.0, -2.0, 1.0)), ValueError,
                               "class_weights"),
    "average": (_bad(average="samples"), ValueError, "average"),
    "from_logits": (_bad(from_logits="relu"), ValueError, "from_logits"),
    "softmax-one-class": (_bad(y_true=_Y[..., :1], y_pred=_P[..., :1], from_logits="softmax"), ValueError,
                          "from_logits"),
    "alpha": (_bad(alpha=-0.1), ValueError, "alpha"),
    "beta": (_bad(beta=-1.0), ValueError, "beta"),
    "gamma": (_bad("focal_tversky_loss", gamma=-0.5), ValueError, "gamma"),
    "epsilon": (_bad("dice_loss", epsilon=-1e-5), ValueError, "epsilon"),
    "ignore_index-dense": (_bad(ignore_index=255), ValueError, "ignore_index"),
    "class_axis-range": (_bad(class_axis=4), ValueError, "class_axis"),
    "class_axis-batch": (_bad(class_axis=0), ValueError, "class_axis"),
    "class_axis-negative-range": (_bad(class_axis=-5), ValueError, "class_axis"),
    "background_index-range": (_bad(include_background=False, background_index=3), ValueError,
                               "background_index"),
    "float-sparse-labels": (_bad(y_true=_LABELS.astype(np.float64)), TypeError, "y_true"),
    "validate-labels": (_bad(y_true=np.where(_LABELS == 2, 3, _LABELS), validate=True), ValueError, "y_true"),
    "validate-negative-labels": (_bad(y_true=-_LABELS, validate=True), ValueError, "y_true"),
    "validate-ignore-other": (_bad(y_true=np.where(_LABELS == 2, 254, _LABELS), ignore_index=255, validate=True),
                              ValueError, "y_true"),
    "validate-probabilities": (_bad(y_pred=_P * 1.5, validate=True), ValueError, "y_pred"),
    "validate-negative-probabilities": (_bad(y_pred=_P - 0.5, validate=True), ValueError, "y_pred"),
    "validate-soft-labels": (_bad(y_true=_Y * 2.0, validate=True), ValueError, "y_true"),
}


def _raises_for_each(xp, cases):
    for case in cases:
        (name, y_true, y_pred, options), error, pattern = ERROR_CASES[case]
        y_true = _Y if y_true is None else y_true
        y_pred = _P if y_pred is None else y_pred
        with pytest.raises(error, match=pattern):
            _call(xp, name, y_true, y_pred, **options)


#: Checks of the data's values, which run on each library's arrays.
DATA_CASES = [case for case in ERROR_CASES if case.startswith("validate-")]


def test_bad_input_raises_naming_the_argument():
    """Shapes, dtypes and options are checked before any library computes (the error
    catalogue, tests/test_errors_catalogue.py, covers every loss): NumPy is enough here."""
    from conftest import load_backend

    _raises_for_each(load_backend("numpy"), [case for case in ERROR_CASES if case not in DATA_CASES])


def test_bad_data_raises_naming_the_argument(xp):
    _raises_for_each(xp, DATA_CASES)


@pytest.mark.parametrize("case", [
    dict(y_true=np.where(_LABELS == 2, 255, _LABELS), ignore_index=255),
    dict(y_true=_LABELS),
    dict(y_true=_Y.astype(bool)),
    dict(y_pred=np.log(_P), from_logits=True),
], ids=["ignore_index", "sparse", "bool", "logits"])
def test_validate_accepts_valid_input(xp, case):
    case = dict(case)
    y_true, y_pred = case.pop("y_true", _Y), case.pop("y_pred", _P)
    loss = _call(xp, "dice_loss", y_true, y_pred, validate=True, **case)
    assert np.all(np.isfinite(xp.to_numpy(loss)))


def test_mixed_array_libraries_raise():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="y_true"):
        lossfns.dice_loss(_Y, torch.from_numpy(_P))
    with pytest.raises(TypeError, match="mask"):
        lossfns.dice_loss(torch.from_numpy(_Y), torch.from_numpy(_P), mask=np.ones(_P.shape[:-1]))


def test_validate_is_a_no_op_under_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    out_of_range = jax.numpy.asarray(_P * 1.5)

    @jax.jit
    def loss(y_pred):
        return lossfns.dice_loss(jax.numpy.asarray(_LABELS + 5), y_pred, validate=True)

    assert np.asarray(loss(out_of_range)).shape == (_P.shape[0],)


def test_validate_is_a_no_op_under_tf_function():
    tf = pytest.importorskip("tensorflow")

    @tf.function
    def loss(y_true, y_pred):
        return lossfns.dice_loss(y_true, y_pred, validate=True)

    assert loss(tf.constant(_LABELS + 5), tf.constant(_P * 1.5)).shape == (_P.shape[0],)
