"""Region losses of the tensorflow-mri family: Tversky, focal Tversky, F1/Dice, IoU/Jaccard.

Each is a formula over the confusion terms (SPEC §4), averaged over classes by ``average``.
"""

from __future__ import annotations

from . import numerics as nx
from . import validation as v
from .confusion import confusion_sums
from .inputs import PreparedInputs, prepare


def tversky_index(xp, tp, fp, fn, *, alpha: float, beta: float, epsilon: float):
    r"""``TI = (TP + ε) / (TP + α·FP + β·FN + ε)``; 1 where the denominator is 0 (ε = 0, empty class)."""
    eps = nx.full_like_scalar(xp, epsilon, tp)
    return nx.safe_divide(xp, tp + eps, tp + alpha * fp + beta * fn + eps, default=1.0)


def check_region_options(average, class_weights, include_background):
    v.check_choice("average", average, v.AVERAGES)
    v.check_bool("include_background", include_background)
    return v.check_weights("class_weights", class_weights)


def average_classes(inputs: PreparedInputs, class_loss, *, average="macro", class_weights=None,
                    include_background=True, background_index=0):
    """Apply ``class_loss(tp, fp, fn)`` per class and combine the classes (SPEC §4).

    * ``macro``: the mean of the per-class losses.
    * ``micro``: TP, FP and FN summed over classes first, then one formula.
    * ``weighted``: ``Σ_c w_c · loss_c`` with ``class_weights`` as given, or the support
      ``(TP + FN)_c / Σ (TP + FN)`` per sample (0 where a sample has no support).

    ``include_background=False`` drops class ``background_index`` (and its weight) first.
    ``class_weights`` is ignored unless ``average="weighted"``, as in tensorflow-mri.
    """
    xp = inputs.xp
    num_classes = inputs.num_classes
    class_weights = check_region_options(average, class_weights, include_background)
    v.check_length("class_weights", class_weights, num_classes)
    background = v.check_background_index(background_index, num_classes)
    sums = confusion_sums(inputs)
    tp, fp, fn = sums.tp, sums.fp, sums.fn

    kept = list(range(num_classes))
    if not include_background:
        kept.remove(background)
        if not kept:
            raise ValueError("include_background=False leaves no class: y_pred has 1 class")
        index = xp.asarray(kept, device=inputs.device)
        tp, fp, fn = (xp.take(t, index, axis=-1) for t in (tp, fp, fn))
        if class_weights is not None:
            class_weights = tuple(class_weights[c] for c in kept)

    if average == "micro":
        return class_loss(*(xp.sum(t, axis=-1) for t in (tp, fp, fn)))
    losses = class_loss(tp, fp, fn)
    if average == "macro":
        return xp.mean(losses, axis=-1)
    if class_weights is None:
        support = tp + fn
        weights = nx.safe_divide(xp, support, xp.sum(support, axis=-1, keepdims=True))
    else:
        weights = xp.asarray(class_weights, dtype=losses.dtype, device=inputs.device)
    return xp.sum(weights * losses, axis=-1)


def focal_tversky_from_inputs(inputs: PreparedInputs, *, alpha, beta, gamma, epsilon, **averaging):
    """Focal Tversky loss of prepared inputs; the other region losses are special cases."""
    xp = inputs.xp

    def class_loss(tp, fp, fn):
        index = tversky_index(xp, tp, fp, fn, alpha=alpha, beta=beta, epsilon=epsilon)
        return nx.guarded_power(xp, nx.full_like_scalar(xp, 1.0, index) - index, gamma)

    return average_classes(inputs, class_loss, **averaging)


def focal_tversky_loss(y_true, y_pred, *, alpha=0.3, beta=0.7, gamma=0.75, epsilon=1e-5,
                       average="macro", class_weights=None, include_background=True,
                       background_index=0, **options):
    r"""Focal Tversky loss (Abraham & Khan 2019, in tensorflow-mri's notation).

    .. math::
        L = \left(1 - \frac{TP + \epsilon}{TP + \alpha\,FP + \beta\,FN + \epsilon}\right)^{\gamma}

    per class, combined over classes by ``average``. α weights false positives and β false
    negatives (Salehi 2017; Keras 3's ``Tversky`` names them the other way round). Note that
    this γ is the exponent itself, whereas the Unified Focal family uses ``1 - γ``.

    Args:
      y_true: dense labels ``[batch, d1, ..., dk, classes]`` or integer class indices
        ``[batch, d1, ..., dk]``.
      y_pred: probabilities ``[batch, d1, ..., dk, classes]`` (logits with ``from_logits``).
      alpha: weight of false positives, >= 0.
      beta: weight of false negatives, >= 0.
      gamma: focal exponent, >= 0 (values below 1 are safe: a guarded power is used).
      epsilon: smoothing added to numerator and denominator, >= 0.
      average: ``"macro"``, ``"micro"`` or ``"weighted"``.
      class_weights: one weight per class, used with ``average="weighted"``.
      include_background: keep class ``background_index`` in the average.
      background_index: the background class.
      **options: ``class_axis``, ``from_logits``, ``mask``, ``ignore_index``, ``batch``,
        ``validate`` (SPEC §2).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Abraham & Khan, "A novel focal Tversky loss function ...", ISBI 2019.
      Salehi et al., "Tversky loss function for image segmentation ...", MLMI 2017.
    """
    alpha, beta = v.check_nonnegative("alpha", alpha), v.check_nonnegative("beta", beta)
    gamma, epsilon = v.check_nonnegative("gamma", gamma), v.check_nonnegative("epsilon", epsilon)
    inputs = prepare(y_true, y_pred, **options)
    return focal_tversky_from_inputs(
        inputs, alpha=alpha, beta=beta, gamma=gamma, epsilon=epsilon, average=average,
        class_weights=class_weights, include_background=include_background,
        background_index=background_index,
    )


def tversky_loss(y_true, y_pred, *, alpha=0.3, beta=0.7, epsilon=1e-5, average="macro",
                 class_weights=None, include_background=True, background_index=0, **options):
    r"""Tversky loss (Salehi et al. 2017).

    .. math::
        L = 1 - \frac{TP + \epsilon}{TP + \alpha\,FP + \beta\,FN + \epsilon}

    per class, combined by ``average``. Arguments and shapes as in
    :func:`focal_tversky_loss` (this is its ``gamma=1`` case).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    return focal_tversky_loss(
        y_true, y_pred, alpha=alpha, beta=beta, gamma=1.0, epsilon=epsilon, average=average,
        class_weights=class_weights, include_background=include_background,
        background_index=background_index, **options,
    )


def f1_loss(y_true, y_pred, *, epsilon=1e-5, average="macro", class_weights=None,
            include_background=True, background_index=0, **options):
    r"""F1 (Dice) loss.

    .. math::
        L = 1 - \frac{TP + \epsilon}{TP + \tfrac12 FP + \tfrac12 FN + \epsilon}
          = 1 - \frac{2\,TP + 2\epsilon}{2\,TP + FP + FN + 2\epsilon}

    per class, combined by ``average``. MONAI's ``DiceLoss(smooth_nr=s, smooth_dr=s)``
    equals this with ``epsilon = s / 2``. Arguments and shapes as in :func:`focal_tversky_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    return tversky_loss(
        y_true, y_pred, alpha=0.5, beta=0.5, epsilon=epsilon, average=average,
        class_weights=class_weights, include_background=include_background,
        background_index=background_index, **options,
    )


def iou_loss(y_true, y_pred, *, epsilon=1e-5, average="macro", class_weights=None,
             include_background=True, background_index=0, **options):
    r"""IoU (Jaccard) loss.

    .. math::
        L = 1 - \frac{TP + \epsilon}{TP + FP + FN + \epsilon}

    per class, combined by ``average``. Arguments and shapes as in :func:`focal_tversky_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    return tversky_loss(
        y_true, y_pred, alpha=1.0, beta=1.0, epsilon=epsilon, average=average,
        class_weights=class_weights, include_background=include_background,
        background_index=background_index, **options,
    )


dice_loss = f1_loss
jaccard_loss = iou_loss
