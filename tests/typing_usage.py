"""Type-checked by tests/test_typing.py (mypy): the adapters as a user calls them.

Not collected by pytest (no test functions) and never executed; it only has to type-check.
"""

from __future__ import annotations

import numpy as np

import lossfns
from lossfns.adapters import jax as lj
from lossfns.adapters import keras as lk
from lossfns.adapters import torch as lt

probs = np.full((2, 4, 4, 3), 1 / 3)
labels = np.zeros((2, 4, 4), dtype=np.int64)
per_sample = lossfns.dice_loss(labels, probs)
# The core keeps its signatures through the validating decorator, and its attributes.
per_class = lossfns.f1_loss(labels, probs, epsilon=(1e-5, 1e-5), average="none", squared_pred=True)
terms: lossfns.Confusion = lossfns.confusion_terms(labels, probs, from_logits="softmax", batch=True)
alpha_domain = lossfns.tversky_loss.domains["alpha"]
unchecked = lossfns.tversky_loss.unchecked(labels, probs, alpha=0.3, all_reduce=None)
maps = lossfns.signed_distance_maps(labels, 3, spacing=(1.0, 0.5))
levels = lossfns.deep_supervision(lossfns.dice_loss, labels, [probs], weights="exp", mask=None)

tversky: lt.TverskyLoss = lt.TverskyLoss(alpha=0.3, beta=0.7, reduction="none", class_axis=1)
dice: lt.LossModule = lt.DiceLoss(from_logits="softmax", include_background=False)
focal = lt.CategoricalFocalLoss(alpha=[0.25, 0.5, 0.25], gamma=2.0, from_logits=True)
unified = lt.AsymmetricUnifiedFocalLoss(weight=0.5, delta=0.6, gamma=0.5, background_index=0)
is_f1: lt.F1Loss = lt.DiceLoss()
deep = lt.DeepSupervisionLoss(lt.DiceLoss(epsilon=(0.0, 1e-5)), weights=[0.5, 0.5])

keras_loss: lk.RegistryLoss = lk.FocalTverskyLoss(0.3, 0.7, 0.75, reduction="sum", name="ftl")
keras_region: lk.ConfusionLoss = lk.IoULoss(epsilon=1e-3, average="weighted", class_weights=[1.0, 2.0])
combo = lk.ComboLoss(alpha=0.5, beta=0.5, dtype="float64")

value = lj.tversky_loss(probs, labels, alpha=0.3, beta=0.7, batch=True, axis_name=None)
alias = lj.dice_loss(probs, labels, mask=np.ones((2, 4, 4)))
