"""``confusion_terms`` (SPEC §3) against the float64 NumPy reference, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from reference_region import confusion_reference, prepare_reference, random_inputs

import lossfns

S1, S2, S3 = (6,), (4, 3), (2, 3, 2)  # the shapes test_region uses: JAX compiles each once

CASES = {
    "1d-onehot": dict(spatial=S1),
    "2d-soft-mask": dict(spatial=S2, labels="soft", mask=True),
    "2d-sparse-ignore-mask": dict(spatial=S2, labels="sparse", ignore_index=255, mask=True),
    "2d-sparse_unit-axis1-logits": dict(spatial=S2, labels="sparse_unit", class_axis=1, from_logits=True),
    "3d-onehot-axis2-sigmoid-mask": dict(spatial=S3, class_axis=2, from_logits="sigmoid", mask=True),
    "2d-one-channel-label-map": dict(spatial=S2, num_classes=1, labels="sparse"),
}
_INPUT_KEYS = ("spatial", "num_classes", "labels", "mask", "ignore_index")


def _terms(xp, y_true, y_pred, mask=None, **options):
    """``confusion_terms`` on backend ``xp``, returned as NumPy ``(tp, fp, fn, tn)``."""
    terms = lossfns.confusion_terms(xp.asarray(y_true), xp.asarray(y_pred),
                                    mask=None if mask is None else xp.asarray(mask), **options)
    assert isinstance(terms, lossfns.Confusion)
    return tuple(xp.to_numpy(t) for t in terms)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(xp, case, batch):
    spec = CASES[case]
    make = {k: spec[k] for k in _INPUT_KEYS if k in spec}
    options = {k: v for k, v in spec.items() if k not in _INPUT_KEYS}
    make.update(class_axis=options.get("class_axis", -1), logits="from_logits" in options)
    y_true, y_pred, mask = random_inputs(sum(map(ord, case)), **make)
    if "ignore_index" in spec:
        options["ignore_index"] = spec["ignore_index"]

    got = _terms(xp, y_true, y_pred, mask, batch=batch, **options)
    y, p, m = prepare_reference(y_true, y_pred, mask=mask, **options)
    expected = confusion_reference(y, p, m, batch=batch)
    num_classes = y_pred.shape[options.get("class_axis", -1)]
    shape = (num_classes,) if batch else (y_pred.shape[0], num_classes)
    for name, g, e in zip("tp fp fn tn".split(), got, expected):
        assert g.shape == shape, name
        assert g.dtype == np.float64, name
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12, err_msg=name)
    # Every (weighted) element lands in exactly one cell per class.
    np.testing.assert_allclose(sum(got), np.sum(m, axis=None if batch else tuple(range(1, m.ndim)))[..., None]
                               * np.ones(shape), rtol=1e-12)


def test_float32_matches_reference(xp):
    y_true, y_pred, mask = random_inputs(20, spatial=S2, labels="sparse", mask=True)
    y_pred, mask = y_pred.astype(np.float32), mask.astype(np.float32)
    got = _terms(xp, y_true, y_pred, mask)
    expected = confusion_reference(*prepare_reference(y_true, y_pred, mask=mask))
    for name, g, e in zip("tp fp fn tn".split(), got, expected):
        assert g.dtype == np.float32, name
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=name)


def test_sparse_labels_equal_their_one_hot(xp):
    labels, y_pred, mask = random_inputs(21, spatial=S2, labels="sparse", mask=True)
    onehot = (labels[..., None] == np.arange(3)).astype(np.float64)
    for batch in (False, True):
        sparse = _terms(xp, labels, y_pred, mask, batch=batch)
        unit = _terms(xp, labels[..., None], y_pred, mask, batch=batch)
        dense = _terms(xp, onehot, y_pred, mask, batch=batch)
        for s, u, d in zip(sparse, unit, dense):
            np.testing.assert_allclose(s, d, rtol=1e-12)
            np.testing.assert_allclose(u, d, rtol=1e-12)


def test_zero_mask_equals_cropping(xp):
    y_true, y_pred, _ = random_inputs(22, spatial=S2, labels="sparse")
    mask = np.ones(y_true.shape)
    mask[:, 2:] = 0.0
    masked = _terms(xp, y_true, y_pred, mask)
    cropped = _terms(xp, y_true[:, :2], y_pred[:, :2])
    for name, a, b in zip("tp fp fn tn".split(), masked, cropped):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=name)


def test_terms_are_additive_over_shards(xp):
    y_true, y_pred, mask = random_inputs(23, spatial=S2, batch_size=5, labels="onehot", mask=True)
    whole = _terms(xp, y_true, y_pred, mask, batch=True)
    per_sample = _terms(xp, y_true, y_pred, mask)
    shards = [_terms(xp, y_true[s], y_pred[s], mask[s], batch=True) for s in (slice(0, 2), slice(2, 5))]
    for k, name in enumerate("tp fp fn tn".split()):
        np.testing.assert_allclose(per_sample[k].sum(0), whole[k], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(shards[0][k] + shards[1][k], whole[k], rtol=1e-12, err_msg=name)
