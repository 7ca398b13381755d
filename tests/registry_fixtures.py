"""A loss that is not in the registry, to show that a new entry reaches every adapter."""

from __future__ import annotations

import lossfns
from lossfns import registry
from lossfns import validation as v
from lossfns.domains import NONNEGATIVE


@v.validated(scale=NONNEGATIVE)
def double_dice(y_true, y_pred, *, scale=2.0, class_axis=-1, from_logits=False, mask=None,
                ignore_index=None, batch=False, validate=False, all_reduce=None):
    """Twice the Dice loss (a test loss)."""
    return scale * lossfns.dice_loss(y_true, y_pred, class_axis=class_axis, from_logits=from_logits,
                                     mask=mask, ignore_index=ignore_index, batch=batch,
                                     validate=validate, all_reduce=all_reduce)


DOUBLE_DICE = registry.LossSpec("double_dice", double_dice, "distribution", "DoubleDice")
