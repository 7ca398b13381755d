"""Compound losses: Combo (Taghanaki 2019) and Hybrid Focal (Yeung 2021).

Docs: Losses › Distribution and compound losses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from . import validation as v
from ._typing import Array
from .distribution import (
    categorical_focal_weights,
    class_constants,
    weighted_focal_crossentropy,
)
from .domains import NONNEGATIVE, SMOOTHING, UNIT_INTERVAL, PerClass
from .inputs import prepare
from .region import focal_tversky_kernel


@v.validated(two_channels=True, alpha=UNIT_INTERVAL, beta=UNIT_INTERVAL, epsilon=SMOOTHING)
def combo_loss(y_true: Array, y_pred: Array, *, alpha: float = 0.5, beta: float = 0.5,
               epsilon: float | tuple[float, float] = 1e-5, background_index: int = 0,
               soft_label: bool = False, class_axis: int = -1,
               from_logits: bool | Literal["softmax", "sigmoid"] = False, mask: Array | None = None,
               ignore_index: int | None = None, batch: bool = False, validate: bool = False,
               all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Combo loss (Taghanaki et al. 2019): weighted cross-entropy minus the Dice coefficient.

    .. math::
        L = \alpha\,\mathrm{wCE} - (1 - \alpha)\,\mathrm{DSC},\qquad
        \mathrm{wCE} = -\operatorname{mean}_{\text{elements}} \sum_c w_c\,y_c \log p_c

    with ``w = β`` for every class but the background and ``1 - β`` for the background
    (β > 0.5 penalises false negatives), and ``DSC = mean_c TI_c(0.5, 0.5)``, the macro Dice
    coefficient with smoothing ``epsilon``. The value is negative by definition (its
    minimum is ``-(1 - α)``). The authors' repository puts β on the background instead:
    theirs at β equals ours at ``1 - β``. A single-channel input is expanded to ``[1 - p, p]``.

    Args:
      y_true: dense labels ``[batch, ..., classes]`` or integer class indices.
      y_pred: probabilities or logits (``from_logits``).
      alpha: weight of the cross-entropy part in [0, 1].
      beta: cross-entropy weight of the non-background classes in [0, 1].
      epsilon: Dice smoothing, >= 0.
      background_index: the background class.
      soft_label: the ``|p - y|`` form of the confusion terms of the Dice part.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Taghanaki et al., "Combo loss: Handling input and output imbalance in multi-organ
      segmentation", Computerized Medical Imaging and Graphics, 2019.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.combo_loss(np.array([[0, 1, 1]]), probs), 4))
      [-0.2448]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label, two_channels=True, per_class={"background_index": background_index})
    background = background_index % inputs.num_classes
    weights = class_constants(inputs.num_classes, background, background_value=1.0 - beta, rare_value=beta)
    cross_entropy = weighted_focal_crossentropy(inputs, class_weights=weights, gamma=0.0)
    dice = focal_tversky_kernel(inputs, alpha=0.5, beta=0.5, gamma=1.0, epsilon=epsilon)
    return alpha * cross_entropy - (1.0 - alpha) * (1.0 - dice)


@v.validated(two_channels=True, weight=UNIT_INTERVAL, focal_alpha=PerClass(allow_scalar=True),
             focal_gamma=NONNEGATIVE, tversky_alpha=NONNEGATIVE, tversky_beta=NONNEGATIVE,
             tversky_gamma=NONNEGATIVE, epsilon=SMOOTHING)
def hybrid_focal_loss(y_true: Array, y_pred: Array, *, weight: float = 0.5,
                      focal_alpha: float | Sequence[float] | None = None, focal_gamma: float = 2.0,
                      tversky_alpha: float = 0.3, tversky_beta: float = 0.7, tversky_gamma: float = 0.75,
                      epsilon: float | tuple[float, float] = 1e-5, soft_label: bool = False,
                      class_axis: int = -1, from_logits: bool | Literal["softmax", "sigmoid"] = False,
                      mask: Array | None = None, ignore_index: int | None = None, batch: bool = False,
                      validate: bool = False, all_reduce: Callable[[Array], Array] | None = None) -> Array:
    r"""Hybrid focal loss (Yeung et al. 2021): categorical focal plus focal Tversky.

    .. math::
        L = \lambda\,L_{\text{focal}}(\alpha_f, \gamma_f)
          + (1 - \lambda)\,L_{\text{focal Tversky}}(\alpha_t, \beta_t, \gamma_t, \epsilon)

    :func:`~lossfns.categorical_focal_loss` and :func:`~lossfns.focal_tversky_loss` (macro
    over every class) on the same inputs; a single-channel input is expanded to ``[1 - p, p]``
    first, so both parts see two classes.

    Args:
      y_true, y_pred: as in :func:`~lossfns.combo_loss`.
      weight: λ, the weight of the focal part, in [0, 1].
      focal_alpha: ``None``, one number, or one weight per class.
      focal_gamma: focal exponent, >= 0.
      tversky_alpha, tversky_beta: Tversky weights of false positives and negatives, >= 0.
      tversky_gamma: focal Tversky exponent ``(1 - TI)**γ``, >= 0.
      epsilon: Tversky smoothing, >= 0.
      soft_label: the ``|p - y|`` form of the confusion terms of the Tversky part.
      class_axis, from_logits, mask, ignore_index, batch, validate, all_reduce: the
        common options (see the concepts page of the documentation).

    Returns:
      The loss per sample, ``[batch]`` (``[]`` with ``batch=True``).

    References:
      Yeung et al., "Focus U-Net: A novel dual attention-gated CNN for polyp segmentation
      during colonoscopy", Computers in Biology and Medicine, 2021.

    Example:
      >>> import numpy as np, lossfns
      >>> probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
      >>> print(np.round(lossfns.hybrid_focal_loss(np.array([[0, 1, 1]]), probs), 4))
      [0.2554]
    """
    inputs = prepare(y_true, y_pred, class_axis=class_axis, from_logits=from_logits, mask=mask,
                     ignore_index=ignore_index, batch=batch, validate=validate, all_reduce=all_reduce,
                     soft_label=soft_label, two_channels=True, per_class={"focal_alpha": focal_alpha})
    alpha = categorical_focal_weights(focal_alpha, inputs.num_classes)
    focal = weighted_focal_crossentropy(inputs, class_weights=alpha, gamma=focal_gamma)
    tversky = focal_tversky_kernel(inputs, alpha=tversky_alpha, beta=tversky_beta, gamma=tversky_gamma,
                                   epsilon=epsilon)
    return weight * focal + (1.0 - weight) * tversky


__all__ = ["combo_loss", "hybrid_focal_loss"]
