"""lossfns: segmentation losses with the same numbers in NumPy, PyTorch, JAX and TensorFlow.

The core is pure functions over the Python array API (through ``array-api-compat``); it
imports no deep-learning framework. Framework classes live in ``lossfns.adapters``.
"""

from .boundary import boundary_loss, signed_distance_maps
from .cldice import cldice_loss, dice_cldice_loss
from .compound import combo_loss, hybrid_focal_loss
from .confusion import Confusion, confusion_terms
from .deep_supervision import deep_supervision
from .dice_ce import dice_ce_loss, dice_focal_loss, generalized_dice_focal_loss
from .distribution import (
    binary_crossentropy,
    binary_focal_loss,
    categorical_crossentropy,
    categorical_focal_loss,
)
from .generalized_dice import generalized_dice_loss
from .hausdorff import hausdorff_dt_loss
from .lovasz import lovasz_hinge_loss, lovasz_softmax_loss
from .mcc import mcc_loss
from .region import (
    dice_loss,
    f1_loss,
    focal_tversky_loss,
    iou_loss,
    jaccard_loss,
    region_loss,
    tversky_loss,
)
from .skeleton import skeleton_recall_loss, tubed_skeletons
from .topk import topk_loss
from .unified_focal import (
    asymmetric_focal_loss,
    asymmetric_focal_tversky_loss,
    asymmetric_unified_focal_loss,
    symmetric_focal_loss,
    symmetric_focal_tversky_loss,
    symmetric_unified_focal_loss,
)
from .wasserstein import generalized_wasserstein_dice_loss

__version__ = "0.1.0"

__all__ = [
    "Confusion",
    "asymmetric_focal_loss",
    "asymmetric_focal_tversky_loss",
    "asymmetric_unified_focal_loss",
    "binary_crossentropy",
    "binary_focal_loss",
    "boundary_loss",
    "categorical_crossentropy",
    "categorical_focal_loss",
    "cldice_loss",
    "combo_loss",
    "confusion_terms",
    "deep_supervision",
    "dice_ce_loss",
    "dice_cldice_loss",
    "dice_focal_loss",
    "dice_loss",
    "f1_loss",
    "focal_tversky_loss",
    "generalized_dice_focal_loss",
    "generalized_dice_loss",
    "generalized_wasserstein_dice_loss",
    "hausdorff_dt_loss",
    "hybrid_focal_loss",
    "iou_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "mcc_loss",
    "region_loss",
    "signed_distance_maps",
    "skeleton_recall_loss",
    "symmetric_focal_loss",
    "symmetric_focal_tversky_loss",
    "symmetric_unified_focal_loss",
    "topk_loss",
    "tubed_skeletons",
    "tversky_loss",
]
