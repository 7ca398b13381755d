"""Soft labels (SPEC §3): the ``|p − y|`` form of the confusion terms against its reference,
its equality with the product form on {0, 1} labels, the motivating Dice example, and MONAI's
``soft_label=True`` losses."""

from __future__ import annotations

import numpy as np
import pytest
from reference_overlap import overlap_sums
from reference_region import prepare_reference, random_inputs

import lossfns

SOFT_LOSSES = ("tversky_loss", "dice_loss", "iou_loss", "focal_tversky_loss", "generalized_dice_loss", "mcc_loss")


@pytest.mark.parametrize("batch", [False, True])
def test_confusion_terms_match_reference(xp, batch):
    y_true, y_pred, mask = random_inputs(21, spatial=(4, 3), labels="soft", mask=True)
    terms = lossfns.confusion_terms(xp.asarray(y_true), xp.asarray(y_pred), mask=xp.asarray(mask),
                                    soft_label=True, batch=batch)
    y, p, m = prepare_reference(y_true, y_pred, mask=mask)
    for name, got, expected in zip("tp fp fn tn".split(), terms, overlap_sums(y, p, m, batch=batch, soft_label=True)):
        np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_confusion_terms_float32(xp):
    y_true, y_pred, mask = (a.astype(np.float32) for a in random_inputs(22, spatial=(6,), labels="soft", mask=True))
    terms = lossfns.confusion_terms(xp.asarray(y_true), xp.asarray(y_pred), mask=xp.asarray(mask), soft_label=True)
    y, p, m = prepare_reference(y_true, y_pred, mask=mask)
    for got, expected in zip(terms, overlap_sums(y, p, m, soft_label=True)):
        assert xp.to_numpy(got).dtype == np.float32
        np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("labels", ["onehot", "sparse"])
def test_equals_the_product_form_on_hard_labels(labels):
    y_true, y_pred, mask = random_inputs(23, spatial=(3, 4), labels=labels, mask=True)
    for name in SOFT_LOSSES:
        loss = getattr(lossfns, name)
        for options in ({}, {"batch": True}, {"from_logits": True, "include_background": False}):
            soft = loss(y_true, y_pred, mask=mask, soft_label=True, **options)
            product = loss(y_true, y_pred, mask=mask, soft_label=False, **options)
            np.testing.assert_allclose(soft, product, rtol=1e-12, atol=1e-14, err_msg=f"{name} {options}")


def test_dice_with_half_labels_is_minimal_at_half_only_in_soft_form():
    """The motivating example: every label 0.5. The product form prefers p = 1 (measured)."""
    grid = np.linspace(0.0, 1.0, 11)
    y_true = np.full((1, 8, 1), 0.5)
    soft = [float(lossfns.dice_loss(y_true, np.full((1, 8, 1), q), soft_label=True, epsilon=0.0)[0]) for q in grid]
    product = [float(lossfns.dice_loss(y_true, np.full((1, 8, 1), q), epsilon=0.0)[0]) for q in grid]
    assert np.argmin(soft) == 5 and soft[5] == 0.0
    np.testing.assert_allclose([product[5], product[10]], [0.5, 1 / 3], rtol=1e-12)  # p = 1 beats p = 0.5
    assert np.argmin(product) == 10


def test_soft_form_has_finite_gradients_at_p_equals_y():
    torch = pytest.importorskip("torch")
    y_true, _, mask = random_inputs(24, spatial=(5,), labels="soft", mask=True)
    for name in SOFT_LOSSES:
        p = torch.tensor(y_true, requires_grad=True)
        loss = getattr(lossfns, name)(torch.tensor(y_true), p, mask=torch.tensor(mask), soft_label=True).sum()
        (grad,) = torch.autograd.grad(loss, p, create_graph=True)
        (second,) = torch.autograd.grad((grad * grad).sum(), p)
        assert torch.isfinite(loss) and torch.isfinite(grad).all() and torch.isfinite(second).all(), name


def test_gradcheck_away_from_the_kink():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(25)
    y_true = torch.tensor(rng.uniform(0.0, 0.4, size=(2, 3, 2)))
    y_pred = torch.tensor(rng.uniform(0.5, 0.95, size=(2, 3, 2)), requires_grad=True)  # |p - y| > 0.1
    for name in ("dice_loss", "mcc_loss", "generalized_dice_loss"):
        loss = getattr(lossfns, name)
        assert torch.autograd.gradcheck(lambda p, loss=loss: loss(y_true, p, soft_label=True), (y_pred,)), name


# --- MONAI soft_label=True ------------------------------------------------------------------


def _soft_inputs(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(size=(2, 3, 5, 4))  # [B, C, H, W], soft
    y_pred = rng.uniform(size=(2, 3, 5, 4))
    return y_true, y_pred


@pytest.mark.parametrize("batch", [False, True])
def test_monai_dice_soft_label(batch):
    """MONAI ``DiceLoss(smooth_nr=s, smooth_dr=s, soft_label=True)`` is ``dice_loss(epsilon=s/2)``."""
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    y_true, y_pred = _soft_inputs(26)
    for smooth in (1e-5, 0.4):
        monai = monai_losses.DiceLoss(smooth_nr=smooth, smooth_dr=smooth, soft_label=True, batch=batch,
                                      reduction="none")
        per_class = monai(torch.tensor(y_pred), torch.tensor(y_true)).numpy()
        expected = per_class.reshape(per_class.shape[:2]).mean(axis=1) if not batch else per_class.mean()
        ours = lossfns.dice_loss(y_true, y_pred, soft_label=True, epsilon=smooth / 2, batch=batch, class_axis=1)
        np.testing.assert_allclose(ours, expected, rtol=1e-12, err_msg=f"smooth={smooth}")
        # And the product form is what MONAI's default soft_label=False gives: not the same here.
        product = lossfns.dice_loss(y_true, y_pred, epsilon=smooth / 2, batch=batch, class_axis=1)
        assert np.max(np.abs(product - ours)) > 1e-3


def test_monai_generalized_dice_soft_label():
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    y_true, y_pred = _soft_inputs(27)
    for weighting in ("square", "simple", "uniform"):
        monai = monai_losses.GeneralizedDiceLoss(w_type=weighting, soft_label=True, reduction="none",
                                                 smooth_nr=1e-5, smooth_dr=1e-5)
        expected = monai(torch.tensor(y_pred), torch.tensor(y_true)).numpy().reshape(-1)
        ours = lossfns.generalized_dice_loss(y_true, y_pred, weighting=weighting, soft_label=True, class_axis=1)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, err_msg=weighting)  # MONAI's weights are float32
