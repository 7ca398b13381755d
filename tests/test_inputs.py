"""Input preparation shared by every loss (SPEC §2): activations, masks, label layouts."""

from __future__ import annotations

import numpy as np
import pytest
from reference_region import random_inputs

import lossfns
from lossfns import prepared as pr
from lossfns.inputs import prepare

S2 = (4, 3)


def _probs(xp, y_true, logits, **options):
    """The probabilities ``prepare`` derives, as NumPy."""
    return xp.to_numpy(pr.probabilities(prepare(xp.asarray(y_true), xp.asarray(logits), **options)))


def _terms(xp, y_true, y_pred, mask=None, **options):
    terms = lossfns.confusion_terms(xp.asarray(y_true), xp.asarray(y_pred),
                                    mask=None if mask is None else xp.asarray(mask), **options)
    return [xp.to_numpy(t) for t in terms]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("class_axis", [-1, 1])
def test_from_logits_true_is_softmax_for_several_classes(xp, class_axis):
    y_true, logits, _ = random_inputs(30, spatial=S2, logits=True, class_axis=class_axis)
    expected = _softmax(logits, class_axis)
    for from_logits in (True, "softmax"):
        got = _probs(xp, y_true, logits, from_logits=from_logits, class_axis=class_axis)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    got = _probs(xp, y_true, logits, from_logits="sigmoid", class_axis=class_axis)
    np.testing.assert_allclose(got, _sigmoid(logits), rtol=1e-12)


def test_from_logits_true_is_sigmoid_for_one_class(xp):
    y_true, logits, _ = random_inputs(31, spatial=S2, num_classes=1, logits=True)
    for from_logits in (True, "sigmoid"):
        np.testing.assert_allclose(_probs(xp, y_true, logits, from_logits=from_logits), _sigmoid(logits),
                                   rtol=1e-12)
    # A softmax over one channel would be the constant 1: a region loss must see the sigmoid.
    got = lossfns.dice_loss(xp.asarray(y_true), xp.asarray(logits), from_logits=True)
    expected = lossfns.dice_loss(xp.asarray(y_true), xp.asarray(_sigmoid(logits)))
    np.testing.assert_allclose(xp.to_numpy(got), xp.to_numpy(expected), rtol=1e-12)


def test_softmax_over_one_class_is_an_error(xp):
    y_true, logits, _ = random_inputs(32, spatial=S2, num_classes=1, logits=True)
    with pytest.raises(ValueError, match="from_logits"):
        prepare(xp.asarray(y_true), xp.asarray(logits), from_logits="softmax")
    with pytest.raises(ValueError, match="from_logits"):
        lossfns.tversky_loss(xp.asarray(y_true), xp.asarray(logits), from_logits="softmax")


def test_extreme_logits_give_exact_probabilities(xp):
    labels = np.array([[0, 1, 2], [2, 2, 0]])
    logits = np.where(labels[..., None] == np.arange(3), 1e4, -1e4)
    probs = _probs(xp, labels, logits, from_logits=True)
    np.testing.assert_array_equal(probs, (labels[..., None] == np.arange(3)).astype(float))
    probs = _probs(xp, labels, logits, from_logits="sigmoid")
    np.testing.assert_array_equal(probs, (labels[..., None] == np.arange(3)).astype(float))


@pytest.mark.parametrize("class_axis", [-1, 1])
def test_mask_shapes(xp, class_axis):
    """A mask without the class axis, with a size-1 class axis, or per sample, all mean the same."""
    y_true, y_pred, mask = random_inputs(33, spatial=S2, labels="sparse", mask=True, class_axis=class_axis)
    full = _terms(xp, y_true, y_pred, mask, class_axis=class_axis)
    with_unit_axis = _terms(xp, y_true, y_pred, np.expand_dims(mask, class_axis), class_axis=class_axis)
    for a, b in zip(with_unit_axis, full):
        np.testing.assert_allclose(a, b, rtol=1e-12)

    per_sample = np.array([0.0, 0.5, 2.0]).reshape(3, 1, 1)
    broadcast = np.broadcast_to(per_sample, mask.shape).copy()
    expected = _terms(xp, y_true, y_pred, broadcast, class_axis=class_axis)
    got = _terms(xp, y_true, y_pred, per_sample, class_axis=class_axis)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # Σm counts the elements a per-sample weight stands for: TP+FP+FN+TN = w·H·W.
    np.testing.assert_allclose(sum(got)[:, 0], per_sample.ravel() * np.prod(S2), rtol=1e-12)


def test_mask_of_a_wrong_shape_is_an_error(xp):
    y_true, y_pred, mask = random_inputs(34, spatial=S2, mask=True)
    with pytest.raises(ValueError, match="mask"):
        _terms(xp, y_true, y_pred, np.stack([mask, mask], axis=-1))


@pytest.mark.parametrize("layout", ["without-class-axis", "size-1-class-axis"])
def test_single_channel_integer_label_map(xp, layout):
    """A 0/1 integer map with one channel is the binary target itself, not class indices."""
    labels, y_pred, mask = random_inputs(35, spatial=S2, num_classes=1, labels="sparse", mask=True)
    as_float = labels[..., None].astype(np.float64)
    given = labels if layout == "without-class-axis" else labels[..., None].astype(np.int32)
    for a, b in zip(_terms(xp, given, y_pred, mask), _terms(xp, as_float, y_pred, mask)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    got = lossfns.tversky_loss(xp.asarray(given), xp.asarray(y_pred), mask=xp.asarray(mask))
    expected = lossfns.tversky_loss(xp.asarray(as_float), xp.asarray(y_pred), mask=xp.asarray(mask))
    np.testing.assert_allclose(xp.to_numpy(got), xp.to_numpy(expected), rtol=1e-12)


def test_dense_labels_of_any_real_or_bool_dtype(xp):
    y_true, y_pred, _ = random_inputs(36, spatial=S2)
    expected = _terms(xp, y_true, y_pred)
    for dtype in (np.float32, np.int32, np.int64, bool):
        for a, b in zip(_terms(xp, y_true.astype(dtype), y_pred), expected):
            np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=str(dtype))
            assert a.dtype == np.float64  # y_pred's dtype, whatever the labels' dtype


@pytest.mark.parametrize("from_logits", [False, "softmax", "sigmoid"])
def test_labelled_terms_are_the_gathered_full_terms(xp, from_logits):
    """The sparse focal terms read ``-log p`` and ``1 - p`` on the labelled class only; they
    must equal the full-size terms gathered there (the clip included), element by element."""
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=6.0, size=(2, 5, 3, 4))
    pred = logits if from_logits else _softmax(logits, 1)
    pred[0, :, 0, 0] = [1.0, 0.0, 0.0, 0.0, 0.0]  # probabilities at the clip limits
    labels = rng.integers(0, 5, size=(2, 1, 3, 4))

    def labelled(inputs):
        return (xp.to_numpy(t) for t in (pr.labelled_cross_entropy(inputs), pr.labelled_complement(inputs)))

    inputs = prepare(xp.asarray(labels), xp.asarray(pred), class_axis=1, from_logits=from_logits)
    cross_entropy, complement = labelled(inputs)
    full = prepare(xp.asarray(labels), xp.asarray(pred), class_axis=1, from_logits=from_logits)
    expected_log = np.take_along_axis(xp.to_numpy(pr.log_probabilities(full)), labels, axis=1)
    expected_complement = np.take_along_axis(xp.to_numpy(pr.complement(full)), labels, axis=1)
    np.testing.assert_allclose(-cross_entropy, expected_log, rtol=1e-6, atol=0)
    np.testing.assert_allclose(complement, expected_complement, rtol=1e-6, atol=1e-12)
    assert np.all(np.isfinite(cross_entropy)) and np.all(complement >= 0)
    # Once the full-size log exists (another term needed it), it is gathered instead.
    cross_entropy, complement = labelled(full)
    np.testing.assert_allclose(-cross_entropy, expected_log, rtol=1e-6, atol=0)
    np.testing.assert_allclose(complement, expected_complement, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("classes", [1, 4, 40])
@pytest.mark.parametrize("class_axis", [1, -1])
def test_jax_log_softmax_matches_the_definition_with_its_gradient(classes, class_axis):
    """JAX's class-by-class log-softmax (few classes) and ``jax.nn`` (many) against the
    float64 definition, for confident logits too; the gradient of ``Σ w·log_softmax`` is
    ``w - softmax·Σw``."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from lossfns import numerics

    rng = np.random.default_rng(classes)
    z = rng.normal(scale=30.0, size=(2, classes, 3) if class_axis == 1 else (2, 3, classes))
    w = rng.random(z.shape)
    got = np.asarray(numerics.log_softmax(jax.numpy, jax.numpy.asarray(z), class_axis))
    shifted = z - z.max(axis=class_axis, keepdims=True)
    expected = shifted - np.log(np.exp(shifted).sum(axis=class_axis, keepdims=True))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)

    def weighted(x):
        return (numerics.log_softmax(jax.numpy, x, class_axis) * w).sum()

    gradient = np.asarray(jax.grad(weighted)(jax.numpy.asarray(z)))
    softmax = np.exp(expected)
    np.testing.assert_allclose(gradient, w - softmax * w.sum(axis=class_axis, keepdims=True),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "axes"), [
    ((2, 16, 12, 4), (1, 2)),       # channels-last: grouped
    ((2, 16, 12, 4), (1, 2, 3)),    # every axis but the batch: plain
    ((2, 4, 16, 12), (2, 3)),       # channels-first: plain
    ((3, 7, 5, 2), (1, 2)),         # an odd count: no group divides it
    ((2, 8, 4, 3, 2), (1, 2)),      # two kept trailing axes
    ((4, 6, 3), (0, 1)),            # the batch axis reduced: never merged
    ((4, 3), ()),                   # no axis (inputs without spatial axes)
])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_grouped_blocked_sum_equals_the_plain_sum(framework, shape, axes, keepdims):
    """The grouped reduction JAX and TensorFlow use for channels-last sums is the same sum."""
    from lossfns import numerics

    x = np.random.default_rng(len(shape) + sum(axes)).random(shape)
    if framework == "jax":
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        xp, array = jax.numpy, jax.numpy.asarray(x)
    else:
        tf = pytest.importorskip("tensorflow")
        from lossfns import _tensorflow_namespace as xp

        array = tf.constant(x)
    got = np.asarray(numerics.blocked_sum(xp, array, axes, keepdims=keepdims))
    expected = x.sum(axis=axes, keepdims=keepdims)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12)
