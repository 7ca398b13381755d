r"""The Unified Focal loss family (Yeung et al. 2022), for any number of classes (SPEC §6).

Class ``background_index`` is the background; every other class is "rare". A
single-channel binary input is expanded to ``[1 - p, p]`` first. The modified Tversky
index weighs false negatives by δ and false positives by ``1 - δ``:

.. math::
    mTI_c = \frac{TP_c + \epsilon}{TP_c + \delta\,FN_c + (1-\delta)\,FP_c + \epsilon}

**γ means opposite things in the two focal Tversky losses of this library.**
:func:`~lossfns.focal_tversky_loss` (tensorflow-mri) computes ``(1 - TI)**γ``; the functions
here compute ``(1 - mTI)**(1 - γ)``. Both default to γ = 0.75.

Reference: Yeung, Sala, Schönlieb & Rundo, "Unified Focal loss: Generalising Dice and cross
entropy-based losses to handle class imbalanced medical image segmentation", Computerized
Medical Imaging and Graphics 95, 2022.
"""

from __future__ import annotations

from . import numerics as nx
from . import validation as v
from .distribution import class_constants, weighted_focal_crossentropy
from .inputs import PreparedInputs, prepare
from .region import average_classes, tversky_index


def _prepare(y_true, y_pred, background_index, options):
    inputs = prepare(y_true, y_pred, **options).with_two_channels()
    return inputs, v.check_background_index(background_index, inputs.num_classes)


def _focal_part(inputs: PreparedInputs, background: int, *, delta, gamma, asymmetric):
    weights = class_constants(inputs.num_classes, background, background_value=1.0 - delta, rare_value=delta)
    # The asymmetric form keeps the focal factor on the background only.
    return weighted_focal_crossentropy(
        inputs, class_weights=weights, gamma=0.0 if asymmetric else gamma,
        background_gamma=gamma, background=background,
    )


def _tversky_part(inputs: PreparedInputs, background: int, *, delta, gamma, epsilon, asymmetric):
    xp = inputs.xp

    def class_loss(tp, fp, fn):
        index = tversky_index(xp, tp, fp, fn, alpha=1.0 - delta, beta=delta, epsilon=epsilon)
        complement = nx.full_like_scalar(xp, 1.0, index) - index
        focal = nx.guarded_power(xp, complement, 1.0 - gamma)
        if not asymmetric:
            return focal
        is_background = xp.asarray(
            [c == background for c in range(inputs.num_classes)], device=inputs.device
        )
        # The background term is never focal (suppressed), only rare classes are enhanced.
        return xp.where(is_background, nx.guarded_power(xp, complement, 1.0), focal)

    return average_classes(inputs, class_loss)


def _check(delta, gamma, *, gamma_max):
    delta = v.check_unit_interval("delta", delta)
    gamma = v.check_nonnegative("gamma", gamma)
    if gamma_max is not None and gamma > gamma_max:
        raise ValueError(
            f"gamma must lie in [0, 1] for losses with a Tversky part (the exponent is 1 - gamma), got {gamma}"
        )
    return delta, gamma


def symmetric_focal_loss(y_true, y_pred, *, delta=0.7, gamma=2.0, background_index=0, **options):
    r"""Symmetric focal loss: the focal factor on every class.

    .. math::
        \ell = \sum_c w_c\,(1 - p_c)^{\gamma}\,(-y_c \log p_c),\qquad
        w_{bg} = 1 - \delta,\; w_{rare} = \delta

    averaged over elements (mask-weighted).

    Args:
      y_true: dense labels ``[batch, ..., classes]`` or integer class indices.
      y_pred: probabilities or logits (``from_logits``).
      delta: weight of the rare classes in [0, 1] (background: ``1 - delta``).
      gamma: focal exponent, >= 0.
      background_index: the background class.
      **options: ``class_axis``, ``from_logits``, ``mask``, ``ignore_index``, ``batch``,
        ``validate`` (SPEC §2).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    delta, gamma = _check(delta, gamma, gamma_max=None)
    inputs, background = _prepare(y_true, y_pred, background_index, options)
    return _focal_part(inputs, background, delta=delta, gamma=gamma, asymmetric=False)


def asymmetric_focal_loss(y_true, y_pred, *, delta=0.7, gamma=2.0, background_index=0, **options):
    r"""Asymmetric focal loss: the focal factor suppresses the background only.

    .. math::
        \ell = (1-\delta)(1 - p_{bg})^{\gamma}(-y_{bg}\log p_{bg})
             + \delta \sum_{c \ne bg} (-y_c \log p_c)

    averaged over elements (mask-weighted). Arguments as in :func:`symmetric_focal_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    delta, gamma = _check(delta, gamma, gamma_max=None)
    inputs, background = _prepare(y_true, y_pred, background_index, options)
    return _focal_part(inputs, background, delta=delta, gamma=gamma, asymmetric=True)


def symmetric_focal_tversky_loss(y_true, y_pred, *, delta=0.7, gamma=0.75, epsilon=1e-7,
                                 background_index=0, **options):
    r"""Symmetric focal Tversky loss: ``mean_c (1 - mTI_c)^{1-γ}``.

    Args:
      y_true, y_pred, background_index, **options: as in :func:`symmetric_focal_loss`.
      delta: weight of false negatives in [0, 1] (false positives: ``1 - delta``).
      gamma: in [0, 1]; the exponent is ``1 - gamma`` (γ = 0 is the Tversky loss).
      epsilon: smoothing, >= 0 (1e-7 as in the authors' code).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    delta, gamma = _check(delta, gamma, gamma_max=1.0)
    epsilon = v.check_nonnegative("epsilon", epsilon)
    inputs, background = _prepare(y_true, y_pred, background_index, options)
    return _tversky_part(inputs, background, delta=delta, gamma=gamma, epsilon=epsilon, asymmetric=False)


def asymmetric_focal_tversky_loss(y_true, y_pred, *, delta=0.7, gamma=0.75, epsilon=1e-7,
                                  background_index=0, **options):
    r"""Asymmetric focal Tversky loss: focal enhancement of the rare classes only.

    .. math::
        L = \frac{1}{C}\Big[(1 - mTI_{bg}) + \sum_{c \ne bg} (1 - mTI_c)^{1-\gamma}\Big]

    Arguments as in :func:`symmetric_focal_tversky_loss`.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    delta, gamma = _check(delta, gamma, gamma_max=1.0)
    epsilon = v.check_nonnegative("epsilon", epsilon)
    inputs, background = _prepare(y_true, y_pred, background_index, options)
    return _tversky_part(inputs, background, delta=delta, gamma=gamma, epsilon=epsilon, asymmetric=True)


def _unified(y_true, y_pred, *, weight, delta, gamma, epsilon, background_index, options, asymmetric):
    weight = v.check_unit_interval("weight", weight)
    delta, gamma = _check(delta, gamma, gamma_max=1.0)
    epsilon = v.check_nonnegative("epsilon", epsilon)
    inputs, background = _prepare(y_true, y_pred, background_index, options)
    focal = _focal_part(inputs, background, delta=delta, gamma=gamma, asymmetric=asymmetric)
    tversky = _tversky_part(inputs, background, delta=delta, gamma=gamma, epsilon=epsilon, asymmetric=asymmetric)
    return weight * focal + (1.0 - weight) * tversky


def symmetric_unified_focal_loss(y_true, y_pred, *, weight=0.5, delta=0.6, gamma=0.5, epsilon=1e-7,
                                 background_index=0, **options):
    r"""Symmetric Unified Focal loss (Yeung et al. 2022, eq. 19).

    .. math::
        L = \lambda\,L_{sF}(\delta, \gamma) + (1 - \lambda)\,L_{sFT}(\delta, \gamma)

    λ (``weight``) weighs the focal part, as in the paper and MONAI; the authors' repository
    puts it on the Tversky part (the two agree at λ = 0.5). With γ = 0 and δ = 0.5, λ = 0 is
    the Dice loss and λ = 1 half the categorical cross-entropy.

    Args:
      y_true, y_pred, background_index, **options: as in :func:`symmetric_focal_loss`.
      weight: λ in [0, 1].
      delta: in [0, 1], shared by both parts.
      gamma: in [0, 1], shared by both parts.
      epsilon: Tversky smoothing, >= 0.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    return _unified(y_true, y_pred, weight=weight, delta=delta, gamma=gamma, epsilon=epsilon,
                    background_index=background_index, options=options, asymmetric=False)


def asymmetric_unified_focal_loss(y_true, y_pred, *, weight=0.5, delta=0.6, gamma=0.5, epsilon=1e-7,
                                  background_index=0, **options):
    r"""Asymmetric Unified Focal loss (Yeung et al. 2022, eq. 22).

    .. math::
        L = \lambda\,L_{aF}(\delta, \gamma) + (1 - \lambda)\,L_{aFT}(\delta, \gamma)

    Arguments as in :func:`symmetric_unified_focal_loss`. MONAI 1.6.1's
    ``AsymmetricUnifiedFocalLoss`` averages its focal part over classes and defaults δ = 0.7;
    it agrees with this function at λ = 0.

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).
    """
    return _unified(y_true, y_pred, weight=weight, delta=delta, gamma=gamma, epsilon=epsilon,
                    background_index=background_index, options=options, asymmetric=True)
