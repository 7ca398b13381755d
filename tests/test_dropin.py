"""Options MONAI, nnU-Net, kornia and torch users set (SPEC §21): ε pairs, ``squared_pred``,
cross-entropy class weights, per-class values (``average="none"``), Lovász class weights.

Values are checked against float64 NumPy formulas written here from the contract and
against the peers where the contract states an equivalence (or a documented relation).
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_region import prepare_reference

import lossfns

torch = pytest.importorskip("torch")


def _inputs(seed, *, classes=3, spatial=(5, 4), batch=2, soft=False):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, *spatial, classes))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, classes, size=(batch, *spatial))
    dense = rng.dirichlet(np.ones(classes), size=(batch, *spatial)) if soft else np.eye(classes)[labels]
    return labels, dense, probs, logits


def _sums(y, p, *, squared=False, soft=False):
    """TP, P, A per sample and class (class last); soft: the ``|p - y|`` form of SPEC §3."""
    axes = tuple(range(1, y.ndim - 1))
    predicted = (p * p if squared else p).sum(axes)
    actual = (y * y if squared else y).sum(axes)
    if soft:
        tp = (p.sum(axes) + y.sum(axes) - np.abs(p - y).sum(axes)) / 2
    else:
        tp = (y * p).sum(axes)
    return tp, predicted, actual


def _tversky(tp, predicted, actual, alpha, beta, eps_n, eps_d):
    denominator = tp + alpha * (predicted - tp) + beta * (actual - tp) + eps_d
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator == 0, 1.0, (tp + eps_n) / np.where(denominator == 0, 1.0, denominator))


# --- ε as a (numerator, denominator) pair ------------------------------------------------------


@pytest.mark.parametrize("epsilon", [(0.0, 1e-6), (0.3, 2.0), (1e-5, 0.0)])
def test_epsilon_pairs_in_every_ratio(xp, epsilon):
    labels, dense, probs, _ = _inputs(0)
    tp, predicted, actual = _sums(dense, probs)
    expected = 1 - _tversky(tp, predicted, actual, 0.3, 0.7, *epsilon).mean(-1)
    got = lossfns.tversky_loss(xp.asarray(labels), xp.asarray(probs), epsilon=epsilon)
    np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10)
    weights = 1 / np.where(actual > 0, actual, np.inf) ** 2
    gdl = 1 - (2 * (weights * tp).sum(-1) + epsilon[0]) / ((weights * (predicted + actual)).sum(-1) + epsilon[1])
    got = lossfns.generalized_dice_loss(xp.asarray(labels), xp.asarray(probs), epsilon=epsilon)
    np.testing.assert_allclose(xp.to_numpy(got), gdl, rtol=1e-10)


def test_a_zero_denominator_is_a_perfect_score_even_with_a_numerator_epsilon():
    labels = np.zeros((1, 4), dtype=int)
    probs = np.stack([np.ones((1, 4)), np.zeros((1, 4))], axis=-1)  # class 1 absent and not predicted
    per_class = lossfns.dice_loss(labels, probs, epsilon=(0.5, 0.0), average="none")
    np.testing.assert_allclose(per_class, [[0.0 - 0.5 / 4, 0.0]])  # class 0: 1 - (4 + .5)/4; class 1: 0


def test_mcc_refuses_an_epsilon_pair():
    labels, _, probs, _ = _inputs(1)
    with pytest.raises(ValueError, match="epsilon must be one number here"):
        lossfns.mcc_loss(labels, probs, epsilon=(1e-5, 1e-5))
    with pytest.raises(ValueError, match=r"epsilon\[1\] must be >= 0"):
        lossfns.dice_loss(labels, probs, epsilon=(1e-5, -1.0))


@pytest.mark.parametrize("squared_pred", [False, True])
@pytest.mark.parametrize("jaccard", [False, True])
@pytest.mark.parametrize("smooth", [(1e-5, 1e-5), (0.0, 1e-6), (0.3, 2.0)])
def test_monai_dice_loss_with_separate_smoothing_and_squared_pred(squared_pred, jaccard, smooth):
    """MONAI ``DiceLoss(smooth_nr=a, smooth_dr=b, squared_pred=S, jaccard=J)`` equals
    ``dice_loss`` / ``iou_loss`` with ``epsilon=(a/2, b/2)`` and ``squared_pred=S``."""
    monai = pytest.importorskip("monai.losses")
    labels, dense, probs, _ = _inputs(2)
    p, y = torch.tensor(np.moveaxis(probs, -1, 1)), torch.tensor(np.moveaxis(dense, -1, 1))
    theirs = monai.DiceLoss(squared_pred=squared_pred, jaccard=jaccard, smooth_nr=smooth[0],
                            smooth_dr=smooth[1], reduction="none")(p, y)
    loss = lossfns.iou_loss if jaccard else lossfns.dice_loss
    ours = loss(torch.tensor(labels), p, class_axis=1, squared_pred=squared_pred,
                epsilon=(smooth[0] / 2, smooth[1] / 2))
    np.testing.assert_allclose(ours.numpy(), theirs.reshape(2, 3).mean(1).numpy(), rtol=1e-10, atol=1e-14)


# --- squared_pred -----------------------------------------------------------------------------


@pytest.mark.parametrize("soft_label", [False, True])
def test_squared_pred_squares_the_denominator_sums(xp, soft_label):
    _, dense, probs, _ = _inputs(3, soft=True)
    tp, predicted, actual = _sums(dense, probs, squared=True, soft=soft_label)
    expected = 1 - _tversky(tp, predicted, actual, 0.5, 0.5, 1e-5, 1e-5).mean(-1)
    for loss in (lossfns.dice_loss, lossfns.dice_ce_loss, lossfns.dice_focal_loss):
        options = {} if loss is lossfns.dice_loss else {"ce_weight" if loss is lossfns.dice_ce_loss else "focal_weight": 0.0}
        got = loss(xp.asarray(dense), xp.asarray(probs), squared_pred=True, soft_label=soft_label, **options)
        np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10, err_msg=loss.__name__)
    expected_iou = 1 - _tversky(tp, predicted, actual, 1.0, 1.0, 1e-5, 1e-5).mean(-1)
    got = lossfns.iou_loss(xp.asarray(dense), xp.asarray(probs), squared_pred=True, soft_label=soft_label)
    np.testing.assert_allclose(xp.to_numpy(got), expected_iou, rtol=1e-10)


def test_squared_pred_on_integer_labels_changes_the_predicted_sum_only(xp):
    labels, dense, probs, _ = _inputs(4)
    got = lossfns.dice_loss(xp.asarray(labels), xp.asarray(probs), squared_pred=True)
    expected = lossfns.dice_loss(dense, probs, squared_pred=True)
    np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10)


# --- cross-entropy class weights ----------------------------------------------------------------


@pytest.mark.parametrize("labels_kind", ["indices", "one-hot"])
def test_ce_class_weights_are_torch_cross_entropy_weights(labels_kind):
    """With ``batch=True`` the weighted CE part is ``torch.nn.CrossEntropyLoss(weight=w)``."""
    labels, dense, _, logits = _inputs(5)
    z = torch.tensor(np.moveaxis(logits, -1, 1))
    target = torch.tensor(labels if labels_kind == "indices" else np.moveaxis(dense, -1, 1))
    weights = [0.2, 1.0, 3.0]
    expected = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float64))(z, torch.tensor(labels))
    ours = lossfns.dice_ce_loss(target, z, class_axis=1, from_logits=True, ce_class_weights=weights,
                                dice_weight=0.0, batch=True)
    np.testing.assert_allclose(float(ours), float(expected), rtol=1e-12)


def test_ce_class_weights_per_sample_with_smoothing_and_mask(xp):
    labels, dense, _, logits = _inputs(6)
    mask = np.random.default_rng(7).uniform(size=labels.shape)
    weights, s = np.array([0.5, 2.0, 1.0]), 0.2
    y, z, m = prepare_reference(labels, logits, mask=mask)
    smoothed = (1 - s) * y + s / 3
    log_p = z - z.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    numerator = (m[..., None] * weights * smoothed * -log_p).sum((1, 2, 3))
    denominator = (m[..., None] * weights * smoothed).sum((1, 2, 3))
    got = lossfns.dice_ce_loss(xp.asarray(labels), xp.asarray(logits), from_logits=True, ce_class_weights=weights,
                               label_smoothing=s, mask=xp.asarray(mask), dice_weight=0.0)
    np.testing.assert_allclose(xp.to_numpy(got), numerator / denominator, rtol=1e-10)


def test_ce_class_weights_with_a_sigmoid_are_torch_pos_weight():
    rng = np.random.default_rng(8)
    logits = torch.tensor(rng.normal(size=(2, 3, 4, 4)))
    target = torch.tensor((rng.uniform(size=(2, 3, 4, 4)) < 0.4).astype(float))
    pos_weight = [0.5, 2.0, 4.0]
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float64).view(3, 1, 1))(
        logits, target)
    ours = lossfns.dice_ce_loss(target, logits, class_axis=1, from_logits="sigmoid", ce_class_weights=pos_weight,
                                dice_weight=0.0, batch=True)
    np.testing.assert_allclose(float(ours), float(expected), rtol=1e-12)


def test_monai_dice_ce_with_class_weights_also_weights_its_dice_part():
    """MONAI ``DiceCELoss(weight=w)`` with index targets: torch's weighted CE over the batch
    plus its Dice with ``w`` multiplying each class's Dice loss before the class mean, which
    is ``average="weighted", class_weights=w / C`` here (documented, not copied)."""
    monai = pytest.importorskip("monai.losses")
    labels, _, _, logits = _inputs(9)
    z, target = torch.tensor(np.moveaxis(logits, -1, 1)), torch.tensor(labels)
    weights = [0.2, 1.0, 3.0]
    theirs = monai.DiceCELoss(softmax=True, to_onehot_y=True, weight=torch.tensor(weights, dtype=torch.float64))(z, target[:, None])
    dice = lossfns.dice_loss(target, z, class_axis=1, from_logits=True, average="weighted",
                             class_weights=[w / 3 for w in weights], epsilon=0.5e-5).mean()
    ce = lossfns.dice_ce_loss(target, z, class_axis=1, from_logits=True, ce_class_weights=weights,
                              dice_weight=0.0, batch=True)
    np.testing.assert_allclose(float(theirs), float(dice + ce), rtol=1e-6)


# --- per-class values ----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["dice_loss", "iou_loss", "tversky_loss", "focal_tversky_loss", "mcc_loss"])
def test_average_none_gives_the_per_class_losses(xp, loss):
    labels, _, probs, _ = _inputs(10)
    function = getattr(lossfns, loss)
    per_class = xp.to_numpy(function(xp.asarray(labels), xp.asarray(probs), average="none"))
    assert per_class.shape == (2, 3)
    np.testing.assert_allclose(per_class.mean(-1), function(labels, probs), rtol=1e-12)
    kept = xp.to_numpy(function(xp.asarray(labels), xp.asarray(probs), average="none", include_background=False,
                                batch=True))
    assert kept.shape == (2,)
    np.testing.assert_allclose(kept.mean(), function(labels, probs, include_background=False, batch=True),
                               rtol=1e-12)


def test_average_none_is_refused_where_there_are_no_per_class_values():
    labels, _, probs, _ = _inputs(11)
    with pytest.raises(ValueError, match="average must be one of"):
        lossfns.dice_ce_loss(labels, probs, average="none")


def test_adapters_reduce_per_class_values_over_both_axes():
    from lossfns.adapters import torch as adapter

    labels, _, probs, _ = _inputs(12)
    p, target = torch.tensor(np.moveaxis(probs, -1, 1)), torch.tensor(labels)
    per_class = adapter.DiceLoss(average="none", reduction="none")(p, target)
    assert tuple(per_class.shape) == (2, 3)
    np.testing.assert_allclose(float(adapter.DiceLoss(average="none")(p, target)), float(per_class.mean()))
    np.testing.assert_allclose(float(adapter.DiceLoss(average="none", reduction="sum")(p, target)),
                               float(per_class.sum()))


# --- Lovász-Softmax class weights ----------------------------------------------------------------


@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_class_weights_are_a_weighted_mean(classes):
    labels, _, probs, _ = _inputs(13)
    labels[1] = np.where(labels[1] == 2, 0, labels[1])  # class 2 absent from sample 1
    weights = np.array([0.5, 1.0, 3.0])
    per_class = np.stack([lossfns.lovasz_softmax_loss(labels, probs, classes="all",
                                                      class_weights=np.eye(3)[c].tolist()) for c in range(3)], -1)
    selected = np.ones((2, 3)) if classes == "all" else np.stack([(labels == c).any((1, 2)) for c in range(3)], -1)
    expected = (selected * weights * per_class).sum(-1) / (selected * weights).sum(-1)
    got = lossfns.lovasz_softmax_loss(labels, probs, classes=classes, class_weights=weights.tolist())
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_kornia_lovasz_weights_divide_by_the_number_of_classes():
    kornia_losses = pytest.importorskip("kornia.losses")
    labels, _, _, logits = _inputs(14)
    z, target = torch.tensor(np.moveaxis(logits, -1, 1)), torch.tensor(labels)
    weights = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    theirs = kornia_losses.lovasz_softmax_loss(z, target, weight=weights)
    ours = lossfns.lovasz_softmax_loss(target, z, class_axis=1, from_logits=True, classes="all",
                                       class_weights=weights.tolist())
    np.testing.assert_allclose(float(theirs), float(ours.mean()) * float(weights.sum()) / 3, rtol=1e-10)


# --- Generalized Dice + focal ----------------------------------------------------------------------


def test_monai_generalized_dice_focal_with_a_sigmoid():
    monai = pytest.importorskip("monai.losses")
    rng = np.random.default_rng(15)
    logits = torch.tensor(rng.normal(size=(2, 3, 5, 4)))
    target = torch.tensor((rng.uniform(size=(2, 3, 5, 4)) < 0.4).astype(float))
    theirs = monai.GeneralizedDiceFocalLoss(sigmoid=True)(logits, target)
    ours = lossfns.generalized_dice_focal_loss(target, logits, class_axis=1, from_logits="sigmoid")
    np.testing.assert_allclose(float(ours.mean()), float(theirs), rtol=1e-6)


def test_generalized_dice_focal_is_its_two_parts(xp):
    labels, _, probs, logits = _inputs(16)
    got = lossfns.generalized_dice_focal_loss(xp.asarray(labels), xp.asarray(logits), from_logits=True,
                                              gdl_weight=0.7, focal_weight=0.4, gamma=1.5, weighting="simple",
                                              include_background=False)
    expected = (0.7 * lossfns.generalized_dice_loss(labels, logits, from_logits=True, weighting="simple",
                                                    include_background=False)
                + 0.4 * lossfns.categorical_focal_loss(labels, logits, from_logits=True, gamma=1.5))
    np.testing.assert_allclose(xp.to_numpy(got), expected, rtol=1e-10)


# --- nnU-Net with an ignore label ------------------------------------------------------------


def test_nnunet_dice_and_ce_with_an_ignore_label():
    """nnU-Net's ``DC_and_CE_loss(ignore_label=I, batch_dice=False)`` averages its CE over
    the labelled voxels of the whole batch, not per sample: it is our Dice part per sample
    (``batch=False``, mean over the batch) plus our CE part with ``batch=True`` (SPEC §21,
    documented, not copied; nnU-Net returns ``-DSC``, ours ``1 - DSC``)."""
    compound = pytest.importorskip("nnunetv2.training.loss.compound_losses")
    from nnunetv2.training.loss.dice import SoftDiceLoss

    rng = np.random.default_rng(17)
    logits = torch.tensor(rng.normal(size=(3, 4, 6, 5)))
    labels = rng.integers(0, 4, size=(3, 6, 5))
    labels[rng.uniform(size=labels.shape) < 0.25] = 255
    labels[1, :3] = 255  # the samples hold different numbers of labelled voxels
    target = torch.tensor(labels)
    nnunet = compound.DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False}, {},
                                     ignore_label=255, dice_class=SoftDiceLoss)
    theirs = nnunet(logits, target[:, None].double())
    options = dict(class_axis=1, from_logits=True, ignore_index=255)
    dice = lossfns.dice_loss(target, logits, include_background=False, epsilon=0.5e-5, **options).mean()
    ce = lossfns.categorical_crossentropy(target, logits, batch=True, **options)
    np.testing.assert_allclose(float(theirs), float(dice - 1.0 + ce), rtol=1e-7)  # nnU-Net: 1.5e-9 apart
    per_sample_ce = lossfns.categorical_crossentropy(target, logits, **options).mean()
    assert abs(float(per_sample_ce) - float(ce)) > 1e-3  # the per-sample mean is another number
