"""Benchmark cases and losses, and the NumPy inputs every contender receives.

A *case* fixes shape, number of classes, label format and dtype; a *loss* fixes which
lossfns function (and which peer class) is measured and whether it is fed probabilities or
logits. Inputs are generated from a seed per case, so every subprocess sees the same
values; each framework converts them once, outside the timed region.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    """One input configuration.

    Attributes:
      name: short identifier used on the command line and in the results.
      batch: batch size.
      spatial: spatial shape (2-D image or 3-D volume).
      classes: number of classes C.
      sparse: labels are integer class indices (class axis absent) instead of one-hot.
      dtype: ``"float32"`` or ``"bfloat16"``, the dtype of predictions and dense targets.
    """

    name: str
    batch: int
    spatial: tuple
    classes: int
    sparse: bool = False
    dtype: str = "float32"

    @property
    def elements(self) -> int:
        """Number of prediction values, ``batch · Π spatial · C``."""
        return self.batch * int(np.prod(self.spatial)) * self.classes

    def describe(self) -> str:
        dims = "×".join(str(s) for s in (self.batch, *self.spatial))
        labels = "sparse labels" if self.sparse else "one-hot"
        return f"{dims}, {self.classes} classes, {labels}, {self.dtype}"


def _family(prefix, batch, spatial_2d, spatial_3d):
    return (
        Case(f"{prefix}2d", batch[0], spatial_2d, 4),
        Case(f"{prefix}2d_bf16", batch[0], spatial_2d, 4, dtype="bfloat16"),
        Case(f"{prefix}3d", batch[1], spatial_3d, 4),
        # The 4-class label target compares this with `3d`; MONAI's DiceCELoss and
        # GeneralizedDiceLoss are matched here, on integer labels (to_onehot_y=True).
        Case(f"{prefix}3d_sparse", batch[1], spatial_3d, 4, sparse=True),
        Case(f"{prefix}3d_bf16", batch[1], spatial_3d, 4, dtype="bfloat16"),
        # The memory target compares these two: the same loss on labels vs float one-hot.
        Case(f"{prefix}3d16_sparse", batch[1], spatial_3d, 16, sparse=True),
        Case(f"{prefix}3d16_onehot", batch[1], spatial_3d, 16),
    )


#: Full-size cases: 8×256×256 images and 2×96³ volumes.
FULL_CASES = _family("", (8, 2), (256, 256), (96, 96, 96))
#: The same configurations on tiny shapes (``--quick`` and the smoke test).
QUICK_CASES = _family("", (2, 1), (16, 16), (8, 8, 8))
CASE_NAMES = tuple(case.name for case in FULL_CASES)


def get_case(name: str, quick: bool = False) -> Case:
    for case in QUICK_CASES if quick else FULL_CASES:
        if case.name == name:
            return case
    raise ValueError(f"unknown case {name!r}; known: {', '.join(CASE_NAMES)}")


@dataclass(frozen=True)
class Loss:
    """A loss as benchmarked: the lossfns function, its arguments and its input kind.

    Attributes:
      name: benchmark row name.
      function: name of the lossfns core function.
      kwargs: hyperparameters passed to every lossfns contender (peers get the equivalent).
      logits: the loss is fed logits (``from_logits=True``) instead of probabilities.
    """

    name: str
    function: str
    kwargs: tuple = ()
    logits: bool = False

    @property
    def options(self) -> dict:
        options = dict(self.kwargs)
        if self.logits:
            options["from_logits"] = True
        return options


LOSSES = (
    Loss("dice", "dice_loss"),
    Loss("tversky", "tversky_loss", (("alpha", 0.3), ("beta", 0.7))),
    Loss("categorical_focal", "categorical_focal_loss", (("gamma", 2.0),), logits=True),
    Loss("binary_focal", "binary_focal_loss", (("alpha", 0.25), ("gamma", 2.0)), logits=True),
    Loss("unified_focal", "asymmetric_unified_focal_loss"),
    # Structure-aware losses: measured against their one peer each, on request only
    # (--losses lovasz_softmax,cldice), so the default run stays as it was.
    Loss("lovasz_softmax", "lovasz_softmax_loss", logits=True),
    Loss("cldice", "cldice_loss"),
    # Compound and weighted region losses, from logits as MONAI's DiceCELoss(softmax=True)
    # and GeneralizedDiceLoss(softmax=True) take them; on request (--losses dice_ce,...).
    Loss("dice_ce", "dice_ce_loss", logits=True),
    Loss("generalized_dice", "generalized_dice_loss", logits=True),
    # SPEC §22 losses against their one peer each (MONAI's GeneralizedWassersteinDiceLoss,
    # nnU-Net's TopKLoss, which averages over the batch), on request
    # (--losses wasserstein_dice,topk). The distance matrix is the registry's example.
    Loss("wasserstein_dice", "generalized_wasserstein_dice_loss", logits=True),
    Loss("topk", "topk_loss", (("k", 10.0), ("batch", True)), logits=True),
)
LOSS_NAMES = tuple(loss.name for loss in LOSSES)
#: Losses timed on lossfns' torch core and their one peer only.
STRUCTURE_LOSSES = ("lovasz_softmax", "cldice", "wasserstein_dice", "topk")
COMPOUND_LOSSES = ("dice_ce", "generalized_dice")
DEFAULT_LOSS_NAMES = tuple(name for name in LOSS_NAMES if name not in STRUCTURE_LOSSES + COMPOUND_LOSSES)
REGION_LOSSES = ("dice", "tversky")


def get_loss(name: str) -> Loss:
    for loss in LOSSES:
        if loss.name == name:
            return loss
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSS_NAMES)}")


@dataclass
class Arrays:
    """NumPy inputs of a case, channels-last, float32 (cast to ``case.dtype`` per framework).

    ``logits`` and ``probs = softmax(logits)`` are ``[batch, *spatial, C]``; ``labels`` are
    ``[batch, *spatial]`` integers; ``onehot`` is their float one-hot (``None`` for sparse
    cases, which never materialise it).
    """

    logits: np.ndarray
    probs: np.ndarray
    labels: np.ndarray
    onehot: np.ndarray | None

    def target(self, sparse: bool):
        return self.labels if sparse else self.onehot


@functools.lru_cache(maxsize=1)  # --in-process runs feed one case to every contender in turn
def make_arrays(case: Case, seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    shape = (case.batch, *case.spatial, case.classes)
    logits = rng.standard_normal(shape, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    labels = rng.integers(0, case.classes, size=shape[:-1], dtype=np.int64)
    onehot = None if case.sparse else np.eye(case.classes, dtype=np.float32)[labels]
    return Arrays(logits, probs, labels, onehot)


def channels_first(x: np.ndarray) -> np.ndarray:
    """``[batch, *spatial, C]`` to ``[batch, C, *spatial]`` (contiguous), the torch layout."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))
