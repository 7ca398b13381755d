"""Hand-written text that the loss pages add to what the registry and docstrings say.

Everything keyed by loss or family name is optional: a loss that is registered but not
listed here still gets its page section (formula, hyperparameters, adapters, figure) from
the registry; these tables only add prose. Peer equivalences are the ones the test suite
measures (``tests/test_peers.py`` and the loss tests) or the contract states.
"""

from __future__ import annotations

#: family -> (page title, intro paragraph). Unknown families get a title from their name.
FAMILIES = {
    "region": (
        "Region losses",
        "Formulas of the soft confusion terms (see [confusion terms][confusion-terms]), one value "
        "per class, combined over the classes by `average` (see [averaging][averaging]). These "
        "are tensorflow-mri's `TverskyLoss`, `FocalTverskyLoss`, `F1Loss` and `IoULoss`, with the "
        "same defaults and the same averaging. Their options: `average`, `class_weights`, "
        "`include_background`, `background_index`, `soft_label` and the common options.",
    ),
    "distribution": (
        "Distribution losses",
        "Per-element losses averaged over the elements of a sample with the mask as weights "
        "(`Σ m·ℓ / Σ m`, 0 when `Σ m = 0`). With probabilities, `p` is clipped to "
        "`[1e-7, 1 − 1e-7]` inside the log terms and the focal factors next to them (Keras' "
        "epsilon) and nowhere else; with logits every log comes from a log-softmax or "
        "log-sigmoid and nothing is clipped. The binary losses always use a sigmoid.",
    ),
    "compound": (
        "Compound losses",
        "Sums of a distribution term and a region term. With `batch=True` every part is a batch "
        "quantity (global Dice, cross-entropy averaged over every element of the batch), so the "
        "distributed batch loss stays exact.",
    ),
    "unified_focal": (
        "Unified Focal family",
        "Yeung et al. 2022. Class `background_index` (default 0) is the background and every "
        "other class is *rare*; a single-channel binary input is expanded to `[1 − p, p]` first. "
        "The modified Tversky index weighs false negatives by δ and false positives by `1 − δ`: "
        "$mTI_c = (TP_c + \\epsilon)/(TP_c + \\delta\\,FN_c + (1-\\delta)\\,FP_c + \\epsilon)$, "
        "with ε = 1e-7 by default, as in the authors' code. γ must lie in [0, 1] wherever there "
        "is a Tversky part (the exponent is `1 − γ`).\n\n"
        "!!! warning \"γ means opposite things in the two focal Tversky losses\"\n"
        "    [`focal_tversky_loss`][focal_tversky_loss] (tensorflow-mri) computes `(1 − TI)^γ`; "
        "the functions on this page compute `(1 − mTI)^(1−γ)`. Both default to γ = 0.75, a mild "
        "exponent in one and a strong one in the other. In `focal_tversky_loss` α weighs false "
        "positives; here δ weighs false negatives.",
    ),
    "dice_ce": (
        "Dice + cross-entropy losses",
        "nnU-Net's default loss and MONAI's `DiceCELoss` / `DiceFocalLoss`: a cross-entropy (or "
        "focal) part over every class plus `1 − DSC`, the F1 loss with the region options, from "
        "one preparation of the inputs. A sigmoid activation (one channel, or "
        "`from_logits=\"sigmoid\"`) switches the first part to the binary cross-entropy or focal "
        "loss. `label_smoothing` acts on the cross-entropy / focal part only.",
    ),
    "generalized_dice": (
        "Generalized Dice",
        "Sudre et al. 2017: one ratio with the classes summed inside, each weighted by the inverse "
        "(square) of its label volume; a class absent from a sample takes the largest weight of the "
        "classes present, as in MONAI. With `batch=True` the weights come from the global batch "
        "sums, after `all_reduce`, so the distributed loss is exact.",
    ),
    "mcc": (
        "Matthews correlation loss",
        "`1 − MCC` per class from all four confusion terms, combined over classes by `average` like "
        "the region losses. The square root is guarded so that its gradient stays finite where its "
        "argument is 0.",
    ),
    "lovasz": (
        "Lovász losses",
        "Berman et al. 2018: convex surrogates of the Jaccard index, computed per sample and class "
        "from the errors sorted in decreasing order. They are not additive: with `all_reduce` (and "
        "so `process_group` / `axis_name`) they raise a `ValueError`, because a global Lovász loss "
        "cannot be computed from per-replica sums. Masks select elements: an element of weight 0 "
        "is left out, every other counts fully.",
    ),
    "boundary": (
        "Boundary loss",
        "Kervadec et al. 2019: the predicted probabilities weighted by signed distance maps of the "
        "ground truth (`lossfns.signed_distance_maps`, computed on the host with SciPy), negative "
        "inside each class. The loss is linear in `p`; combine it with a region loss.",
    ),
    "hausdorff": (
        "Hausdorff distance loss",
        "Karimi & Salcudean 2019: squared errors weighted by how far each element lies from the "
        "boundary of the predicted and of the true mask, a differentiable stand-in for the "
        "Hausdorff distance. The distance fields come from SciPy's exact transform on the host, "
        "through a callback under `jax.jit` and `tf.function`; `torch.compile` needs a graph "
        "break there, so compile without `fullgraph=True`.",
    ),
    "skeleton": (
        "Skeleton recall loss",
        "Kirchhoff et al. 2024: the recall of the ground truth's skeleton, thickened into a small "
        "tube. `lossfns.tubed_skeletons(labels)` computes it on the host with scikit-image, once per "
        "sample in the data pipeline (`pip install 'lossfns[skeleton]'`); the loss itself is two "
        "additive sums per class, so it is exact under data parallelism.",
    ),
    "wasserstein": (
        "Generalized Wasserstein Dice",
        "Fidon et al. 2017: a Dice loss in which a wrong class costs its distance to the right one, "
        "read from a class-distance matrix (`distance_matrix`, required), so that confusing two "
        "similar classes costs less than confusing dissimilar ones. The sums are additive.",
    ),
    "topk": (
        "Top-k cross-entropy",
        "nnU-Net's `TopKLoss` (Wu et al. 2016): the cross-entropy averaged over the `k` percent of "
        "elements where it is largest, so that training concentrates on the hard elements. It "
        "sorts every element of a sample, so it is not additive: `all_reduce` is refused.",
    ),
    "cldice": (
        "clDice losses",
        "Shit et al. 2021: soft skeletons (iterated soft erosion and opening over the spatial axes) "
        "compare the topology of thin structures such as vessels; `dice_cldice_loss` mixes clDice "
        "with a Dice term. All sums are additive, so the distributed batch loss is exact.",
    ),
}

#: loss -> Markdown list items: the equivalent call elsewhere and the measured differences.
PEERS = {
    "tversky_loss": [
        "**tensorflow-mri** `TverskyLoss(alpha, beta, epsilon)`: the same definition, defaults "
        "and averaging (α weighs false positives).",
        "**MONAI** `TverskyLoss(alpha=a, beta=b, smooth_nr=ε, smooth_dr=ε)` equals "
        "`tversky_loss(alpha=a, beta=b, epsilon=ε)`: MONAI takes ε as is "
        "(`tests/test_peers.py::test_monai_tversky`).",
        "**Keras 3** `keras.losses.Tversky(alpha=a, beta=b, axis=(1, 2))`: its α weighs false "
        "*negatives*, so it is `tversky_loss(alpha=b, beta=a, epsilon=0)` (mean over classes, "
        "equal to 1e-6: Keras adds 1e-7 to the denominator only; "
        "`tests/test_peers.py::test_keras_dice_and_tversky`).",
    ],
    "focal_tversky_loss": [
        "**tensorflow-mri** `FocalTverskyLoss(alpha, beta, gamma, epsilon)`: the same "
        "definition, with γ the exponent itself (γ = 0.75 by default).",
        "Not the Unified Focal `symmetric_focal_tversky_loss`, whose exponent is `1 − γ`.",
    ],
    "f1_loss": [
        "**tensorflow-mri** `F1Loss(epsilon)`: the same definition.",
        "**MONAI** `DiceLoss(smooth_nr=s, smooth_dr=s)` equals `dice_loss(epsilon=s/2)` "
        "(softmax and sigmoid; `tests/test_peers.py::test_monai_dice`). MONAI's class `weight` "
        "averages where ours (and tfmri's) `class_weights` add up: a factor of C.",
        "**Keras 3** `keras.losses.Dice(axis=(1, 2), reduction=None)` returns one value per "
        "sample and class; its mean over classes equals `dice_loss(epsilon=0)` to 1e-6 (Keras "
        "adds 1e-7 to the denominator only; `tests/test_peers.py::test_keras_dice_and_tversky`).",
    ],
    "iou_loss": [
        "**tensorflow-mri** `IoULoss(epsilon)`: the same definition.",
    ],
    "binary_crossentropy": [
        "**Keras 3** `BinaryCrossentropy(from_logits=...)`: the same values per element, "
        "averaged over the channels (`tests/test_peers.py::test_keras_crossentropies`).",
        "**PyTorch** `torch.nn.BCEWithLogitsLoss` on logits, averaged per sample.",
    ],
    "categorical_crossentropy": [
        "**Keras 3** `CategoricalCrossentropy(from_logits=...)`: the same values "
        "(`tests/test_peers.py::test_keras_crossentropies`).",
        "**PyTorch** `torch.nn.CrossEntropyLoss(reduction=\"none\")` on logits, averaged over "
        "the elements of each sample.",
    ],
    "binary_focal_loss": [
        "**Keras 3** `BinaryFocalCrossentropy(apply_class_balancing=True, alpha, gamma)` equals "
        "`binary_focal_loss(alpha, gamma)` and `apply_class_balancing=False` equals `alpha=None`, "
        "for 0/1 labels only: Keras computes its focal factor from the labels, which differs "
        "for soft labels (`tests/test_peers.py::test_keras_binary_focal`).",
        "**MONAI** `FocalLoss(alpha, gamma)` (sigmoid) with reduction `\"mean\"` averages over "
        "classes as well (`tests/test_peers.py::test_monai_sigmoid_focal`).",
    ],
    "categorical_focal_loss": [
        "**Keras 3** `CategoricalFocalCrossentropy(alpha, gamma)`: the same values (its "
        "default `alpha=0.25` differs from ours, `None`) "
        "(`tests/test_peers.py::test_keras_categorical_focal`).",
        "**MONAI** `FocalLoss(use_softmax=True)` with reduction `\"mean\"` also averages over "
        "classes (ours sums: a factor C), and with a scalar α it weighs the background `1 − α` "
        "and every other class α (ours: the same α for all) "
        "(`tests/test_peers.py::test_monai_softmax_focal`).",
    ],
    "combo_loss": [
        "**The Unified Focal authors' repository** puts β on the background: theirs at β equals "
        "ours at `1 − β`.",
    ],
    "hybrid_focal_loss": [
        "Yeung et al. 2021; `λ·categorical_focal_loss + (1 − λ)·focal_tversky_loss`, the focal "
        "Tversky part with the macro average over every class.",
    ],
    "asymmetric_unified_focal_loss": [
        "**MONAI 1.6.1** `AsymmetricUnifiedFocalLoss` averages its focal part over classes (half "
        "our value for two classes) and defaults δ = 0.7: the two agree only at λ = 0 "
        "(`tests/test_peers.py::test_monai_asymmetric_unified_focal`).",
        "**The authors' repository** puts `weight` on the Tversky part: theirs at λ equals ours "
        "at `1 − λ` (the two agree at the default 0.5).",
    ],
    "symmetric_unified_focal_loss": [
        "**The authors' repository** puts `weight` on the Tversky part: theirs at λ equals ours "
        "at `1 − λ`.",
    ],
    "dice_ce_loss": [
        "**nnU-Net** `DC_and_CE_loss(weight_ce=a, weight_dice=b)` with `SoftDiceLoss(smooth=s, "
        "do_bg=False, batch_dice=B)` equals `dice_ce_loss(ce_weight=a, dice_weight=b, "
        "epsilon=s/2, include_background=False, batch=B) − b` (nnU-Net returns −DSC, not "
        "1 − DSC; the gradients are equal).",
        "**MONAI** `DiceCELoss(smooth_nr=s, smooth_dr=s, lambda_ce=a, lambda_dice=b)` on logits "
        "equals `dice_ce_loss(..., epsilon=s/2, from_logits=True)` averaged over the batch.",
    ],
    "dice_focal_loss": [
        "**MONAI** `DiceFocalLoss` differs: with `softmax=True` its focal part is still a "
        "sigmoid focal loss of the logits without α, and `include_background=False` also drops "
        "the background from its focal part. Measured: it equals `a·mean binary_focal_loss(...,"
        " alpha=None, from_logits=True)` over the kept channels plus `b·mean f1_loss(epsilon=s/2)`"
        " to about 5e-8 (MONAI's float32 term), and differs from our `dice_focal_loss` by more "
        "than 0.1 on the test inputs.",
    ],
    "generalized_dice_loss": [
        "**MONAI** `GeneralizedDiceLoss(w_type=W, smooth_nr=ε, smooth_dr=ε)` equals "
        "`generalized_dice_loss(weighting=W, epsilon=ε)`; where no class is present MONAI gives "
        "NaN at ε = 0 and we give 0.",
        "**optax** normalises its weights and treats empty classes differently (from its "
        "documentation; optax is not installed in the test environment, so this is not measured).",
    ],
    "mcc_loss": [
        "**segmentation-models-pytorch** `MCCLoss` (binary, sums over the whole batch) equals "
        "`mcc_loss(..., batch=True)` on one channel at ε = 0; smp adds its eps to each of TP, "
        "TN, FP and FN, so the two differ slightly for ε > 0.",
    ],
    "lovasz_softmax_loss": [
        "**segmentation-models-pytorch** `LovaszLoss(mode=\"multiclass\", per_image=True)` on "
        "logits equals `lovasz_softmax_loss(..., from_logits=True)` averaged over the batch.",
        "kornia's current `lovasz_softmax_loss` permutes the labels wrongly.",
    ],
    "lovasz_hinge_loss": [
        "**segmentation-models-pytorch** `LovaszLoss(mode=\"binary\", per_image=True)` gives "
        "the same values on one channel (smp sorts all channels of an image together; we treat "
        "channels as independent binary tasks).",
    ],
    "boundary_loss": [
        "**The authors' code** (Kervadec et al.): the same signed distance maps "
        "(`lossfns.signed_distance_maps`) and the same loss.",
    ],
    "cldice_loss": [
        "**The authors' code** (`soft_cldice`, sums over the whole batch, background dropped) "
        "equals `cldice_loss(..., batch=True)` with the defaults.",
        "**MONAI 1.6.1** `SoftclDiceLoss(iter_=n, smooth_nr=ε, smooth_dr=ε)` is per sample like "
        "ours but adds its `smooth` to the harmonic mean's denominator and defaults "
        "`include_background=True`.",
    ],
    "dice_cldice_loss": [
        "**The authors' code** `soft_dice_cldice` equals `dice_cldice_loss(..., batch=True)` "
        "with the defaults; **MONAI** `SoftDiceclDiceLoss` uses the macro `DiceLoss` for its "
        "Dice part.",
    ],
}

#: Hyperparameter values drawn in a loss's figure, tried in this order of names: the first
#: hyperparameter of a loss found here is varied, the others keep their defaults. Each
#: name has candidate grids; the first grid whose values the loss accepts is used.
FIGURE_GRIDS = {
    "gamma": ([0.0, 0.5, 1.0, 2.0, 4.0], [0.0, 0.25, 0.5, 0.75, 1.0]),
    "focal_gamma": ([0.0, 0.5, 1.0, 2.0, 4.0],),
    "tversky_gamma": ([0.5, 0.75, 1.0, 2.0],),
    "delta": ([0.3, 0.5, 0.7, 0.9],),
    "weight": ([0.0, 0.25, 0.5, 0.75, 1.0],),
    "alpha": ([0.1, 0.3, 0.5, 0.7, 0.9],),
    "beta": ([0.1, 0.3, 0.5, 0.7, 0.9],),
    "dice_weight": ([0.0, 0.5, 1.0, 2.0],),
    "ce_weight": ([0.0, 0.5, 1.0, 2.0],),
    "focal_weight": ([0.0, 0.5, 1.0, 2.0],),
    "label_smoothing": ([0.0, 0.1, 0.2, 0.4],),
    "weighting": (["square", "simple", "uniform"],),
    "iterations": ([1, 3, 5],),
    "classes": (["present", "all"],),
    # The figure's image has 16 foreground and 48 background elements: ε shows only once it
    # is comparable to those counts (MCC: to their products), far above its default.
    "epsilon": ([1e-5, 1.0, 10.0, 100.0, 1000.0],),
}

#: loss -> (hyperparameter, values): a figure that draws other values than FIGURE_GRIDS gives.
#: MCC's ε competes with products of counts (up to 16·48·16·48 here), not with the counts.
FIGURE_OVERRIDES = {
    "mcc_loss": ("epsilon", [1e-5, 100.0, 300.0, 1000.0, 3000.0]),
}

#: Added to a figure's caption when it varies this hyperparameter.
FIGURE_NOTES = {
    "epsilon": "The image has 16 foreground and 48 background elements, so ε moves the curves "
               "only once it is comparable to those counts (for MCC, to their products); at the "
               "default 1e-5 it changes nothing visible.",
    "classes": "With `\"all\"` the absent third class adds its own term (its largest predicted "
               "probability), so the two curves part; with every class present they coincide.",
}

#: loss -> the value column of the loss index: the formula in one line of plain text.
FORMULAS = {
    "tversky_loss": "`1 − TI`, `TI = (TP+ε)/(TP+α·FP+β·FN+ε)`",
    "focal_tversky_loss": "`(1 − TI)^γ`",
    "f1_loss": "`1 − TI(0.5, 0.5)`",
    "iou_loss": "`1 − TI(1, 1)`",
    "binary_crossentropy": "`mean_c −[y log p + (1−y) log(1−p)]`",
    "categorical_crossentropy": "`−Σ_c y_c log p_c`",
    "binary_focal_loss": "`mean_c −[α y (1−p)^γ log p + (1−α)(1−y) p^γ log(1−p)]`",
    "categorical_focal_loss": "`−Σ_c α_c (1−p_c)^γ y_c log p_c`",
    "combo_loss": "`α·wCE − (1−α)·DSC` (negative by definition)",
    "hybrid_focal_loss": "`λ·focal + (1−λ)·focal Tversky`",
    "symmetric_focal_loss": "`Σ_c w_c (1−p_c)^γ (−y_c log p_c)`, `w_bg = 1−δ`, `w_rare = δ`",
    "asymmetric_focal_loss": "focal factor on the background only",
    "symmetric_focal_tversky_loss": "`mean_c (1 − mTI_c)^(1−γ)`",
    "asymmetric_focal_tversky_loss": "`[(1 − mTI_bg) + Σ_rare (1 − mTI_c)^(1−γ)] / C`",
    "symmetric_unified_focal_loss": "`λ·sym. focal + (1−λ)·sym. focal Tversky`",
    "asymmetric_unified_focal_loss": "`λ·asym. focal + (1−λ)·asym. focal Tversky`",
    "generalized_dice_loss": "`1 − (2Σ_c w_c TP_c + ε)/(Σ_c w_c (2TP_c+FP_c+FN_c) + ε)`, "
                             "`w_c = 1/A_c²`, `1/A_c` or 1, `A_c = Σ m·y_c`",
    "mcc_loss": "`1 − (TP·TN − FP·FN)/(√((TP+FP)(TP+FN)(TN+FP)(TN+FN)) + ε)`, averaged like the "
                "region losses",
    "dice_ce_loss": "`w_CE·CE + w_Dice·(1 − DSC)` (nnU-Net, MONAI)",
    "dice_focal_loss": "`w_FL·FL + w_Dice·(1 − DSC)`",
    "lovasz_softmax_loss": "per class `Σ_k e_π(k)·(J_k − J_(k−1))`, `e = |y_c − p_c|` sorted "
                           "decreasingly, `g = y_c` in that order, "
                           "`J_k = 1 − (G − Σ_(j≤k) g_j)/(G + Σ_(j≤k) (1 − g_j))`; mean over the "
                           "classes with `G > 0` (`\"present\"`) or all kept classes",
    "lovasz_hinge_loss": "the same with `e = max(1 − z·(2y − 1), 0)`, per channel, channels "
                         "averaged (logits only)",
    "boundary_loss": "`(1/|K|)·Σ_(c∈K) Σ_i m_i·φ_ic·p_ic / Σ_i m_i`",
    "cldice_loss": "`1 − 2·T_prec·T_sens/(T_prec + T_sens)`, `T_prec = (Σ S(p)·y + ε)/(Σ S(p) + ε)`, "
                   "`T_sens = (Σ S(y)·p + ε)/(Σ S(y) + ε)`",
    "dice_cldice_loss": "`(1 − α)·(1 − (2Σ y·p + ε)/(Σ y + Σ p + ε)) + α·clDice`",
    "generalized_dice_focal_loss": "`w_GDL·L_GDL + w_FL·FL`",
    "hausdorff_dt_loss": "`mean_(c∈K) Σ_i m_i (p_ic − y_ic)² (d_p^α + d_y^α) / Σ_i m_i`, `d` the "
                         "distance fields of `p_c > ½` and `y_c > ½`; `log(1 + L)` with `log=True`",
    "skeleton_recall_loss": "`1 − mean_(c∈K) (Σ m·p_c·[s = c] + ε)/(Σ m·[s = c] + ε)`, `s` the "
                            "tubed skeleton",
    "generalized_wasserstein_dice_loss": "`1 − (2·TP + ε)/(2·TP + E + ε)`, `TP`, `E` from the "
                                         "Wasserstein distances `W_il = Σ_c M[l, c]·p_ic`",
    "topk_loss": "mean of the `⌊n·k/100⌋` largest element-wise cross-entropies",
}

#: loss -> one line: the situation the loss is made for. The "Choosing a loss" guide
#: (docs/guides/choosing.md) says the same by task.
WHEN_TO_USE = {
    "tversky_loss": "Small or under-segmented foreground: raise β above α to make false negatives "
                    "cost more than false positives.",
    "focal_tversky_loss": "Small lesions that a plain Tversky loss already finds but segments "
                          "poorly: γ < 1 keeps the gradient up where the overlap is already good.",
    "f1_loss": "A general-purpose overlap loss when the metric you report is Dice: insensitive "
               "to how much background there is.",
    "iou_loss": "When the metric you report is IoU (Jaccard); weighs poor overlaps more than Dice.",
    "binary_crossentropy": "Multi-label outputs (one sigmoid per channel) and per-pixel "
                           "calibrated probabilities; pair it with a region loss for small "
                           "foregrounds.",
    "categorical_crossentropy": "Mutually exclusive classes with a softmax, when probabilities "
                                "should be calibrated; the usual partner of Dice.",
    "binary_focal_loss": "Sigmoid outputs where easy background pixels swamp the loss: γ "
                         "down-weights what is already right.",
    "categorical_focal_loss": "Softmax outputs with many easy pixels and few hard ones; per-class "
                              "`alpha` adds class weighting.",
    "combo_loss": "Class imbalance at both levels, input (few foreground pixels) and output "
                  "(false positives vs false negatives), in one loss.",
    "hybrid_focal_loss": "Imbalanced segmentation where you want both a focal pixel term and a "
                         "focal Tversky overlap term.",
    "symmetric_focal_loss": "The distribution half of the Unified Focal loss on its own, with "
                            "δ balancing background against the rare classes.",
    "asymmetric_focal_loss": "Rare foreground classes: the focal suppression acts on the "
                             "background only, so rare-class errors keep their full weight.",
    "symmetric_focal_tversky_loss": "The overlap half of the Unified Focal loss on its own, with "
                                    "the same focal exponent on every class.",
    "asymmetric_focal_tversky_loss": "Rare foreground classes: the focal enhancement acts on the "
                                     "rare classes only, the background stays linear.",
    "symmetric_unified_focal_loss": "Class imbalance without a clear background class: every "
                                    "class gets the same focal treatment.",
    "asymmetric_unified_focal_loss": "Strong imbalance with one dominant background (lesions, "
                                     "tumours): the variant Yeung et al. propose for that case.",
    "dice_ce_loss": "The robust default for most segmentation tasks (nnU-Net's loss): Dice for "
                    "overlap, cross-entropy for stable, calibrated gradients.",
    "dice_focal_loss": "Like Dice + cross-entropy when many easy pixels dominate the "
                       "cross-entropy term.",
    "generalized_dice_loss": "Several classes of very different sizes: each class is weighted "
                             "by the inverse (square) of its label volume.",
    "mcc_loss": "Binary segmentation with heavy imbalance where true negatives should count too "
                "(skin lesions, small defects).",
    "lovasz_softmax_loss": "When the metric is mean IoU: a convex surrogate of the Jaccard index, "
                           "often used next to or after cross-entropy.",
    "lovasz_hinge_loss": "Binary segmentation scored by IoU, on logits.",
    "boundary_loss": "Boundaries and highly unbalanced foregrounds: add it, with a growing "
                     "weight, to a region loss.",
    "cldice_loss": "Thin, tubular or network-like structures (vessels, neurons, roads) whose "
                   "connectivity matters more than their volume.",
    "dice_cldice_loss": "Tubular structures: clDice for topology, Dice for volume, in one loss.",
    "generalized_dice_focal_loss": "Classes of very different sizes and many easy pixels: the "
                                   "volume-weighted Dice of Sudre et al. with a focal term.",
    "hausdorff_dt_loss": "When boundary outliers matter (the Hausdorff distance is the metric): add "
                         "it to Dice or cross-entropy; it costs a host distance transform per step.",
    "skeleton_recall_loss": "Thin tubular structures (vessels, nerves, roads, cracks) whose "
                            "connectivity breaks on a few missed elements; cheaper than clDice.",
    "generalized_wasserstein_dice_loss": "Classes with a known similarity (tumour sub-regions, "
                                         "anatomical hierarchies): mistakes between close classes "
                                         "cost less.",
    "topk_loss": "Hard elements drowned by easy ones (thin boundaries, small structures): the "
                 "cross-entropy of the hardest k percent only, as in nnU-Net.",
}

_ARXIV = "https://arxiv.org/abs/"

#: loss -> references: (citation, link). Shown under each loss with its "When to use" line.
REFERENCES = {
    "tversky_loss": [
        ("Salehi, Erdogmus & Gholipour, \"Tversky loss function for image segmentation using 3D "
         "fully convolutional deep networks\", MLMI 2017", _ARXIV + "1706.05721"),
    ],
    "focal_tversky_loss": [
        ("Abraham & Khan, \"A novel focal Tversky loss function with improved attention U-Net "
         "for lesion segmentation\", ISBI 2019", _ARXIV + "1810.07842"),
        ("Salehi et al., \"Tversky loss function for image segmentation ...\", MLMI 2017",
         _ARXIV + "1706.05721"),
    ],
    "f1_loss": [
        ("Milletari, Navab & Ahmadi, \"V-Net: fully convolutional neural networks for volumetric "
         "medical image segmentation\", 3DV 2016", _ARXIV + "1606.04797"),
        ("Sudre et al., \"Generalised Dice overlap as a deep learning loss function for highly "
         "unbalanced segmentations\", DLMIA 2017", _ARXIV + "1707.03237"),
    ],
    "iou_loss": [
        ("Rahman & Wang, \"Optimizing intersection-over-union in deep neural networks for image "
         "segmentation\", ISVC 2016", "https://doi.org/10.1007/978-3-319-50835-1_22"),
        ("Berman, Rannen Triki & Blaschko, \"The Lovász-Softmax loss\", CVPR 2018 (a convex "
         "surrogate of the same index)", _ARXIV + "1705.08790"),
    ],
    "binary_crossentropy": [
        ("Keras 3 `BinaryCrossentropy`, the reference for values and label smoothing",
         "https://keras.io/api/losses/probabilistic_losses/#binarycrossentropy-class"),
        ("Szegedy et al., \"Rethinking the Inception architecture for computer vision\" (label "
         "smoothing), CVPR 2016", _ARXIV + "1512.00567"),
    ],
    "categorical_crossentropy": [
        ("Keras 3 `CategoricalCrossentropy`, the reference for values and label smoothing",
         "https://keras.io/api/losses/probabilistic_losses/#categoricalcrossentropy-class"),
        ("Szegedy et al., \"Rethinking the Inception architecture for computer vision\" (label "
         "smoothing), CVPR 2016", _ARXIV + "1512.00567"),
    ],
    "binary_focal_loss": [
        ("Lin, Goyal, Girshick, He & Dollár, \"Focal loss for dense object detection\", ICCV 2017",
         _ARXIV + "1708.02002"),
    ],
    "categorical_focal_loss": [
        ("Lin, Goyal, Girshick, He & Dollár, \"Focal loss for dense object detection\", ICCV 2017",
         _ARXIV + "1708.02002"),
    ],
    "combo_loss": [
        ("Taghanaki et al., \"Combo loss: handling input and output imbalance in multi-organ "
         "segmentation\", Computerized Medical Imaging and Graphics, 2019", _ARXIV + "1805.02798"),
    ],
    "hybrid_focal_loss": [
        ("Yeung et al., \"Focus U-Net: a novel dual attention-gated CNN for polyp segmentation "
         "during colonoscopy\", Computers in Biology and Medicine, 2021", _ARXIV + "2105.07467"),
    ],
    "dice_ce_loss": [
        ("Isensee et al., \"nnU-Net: a self-configuring method for deep learning-based biomedical "
         "image segmentation\", Nature Methods, 2021", "https://doi.org/10.1038/s41592-020-01008-z"),
    ],
    "dice_focal_loss": [
        ("Lin et al., \"Focal loss for dense object detection\", ICCV 2017", _ARXIV + "1708.02002"),
        ("MONAI `DiceFocalLoss`", "https://docs.monai.io/en/stable/losses.html#dicefocalloss"),
    ],
    "generalized_dice_loss": [
        ("Sudre et al., \"Generalised Dice overlap as a deep learning loss function for highly "
         "unbalanced segmentations\", DLMIA 2017", _ARXIV + "1707.03237"),
    ],
    "mcc_loss": [
        ("Abhishek & Hamarneh, \"Matthews correlation coefficient loss for deep convolutional "
         "networks: application to skin lesion segmentation\", ISBI 2021", _ARXIV + "2010.13454"),
    ],
    "lovasz_softmax_loss": [
        ("Berman, Rannen Triki & Blaschko, \"The Lovász-Softmax loss: a tractable surrogate for "
         "the optimization of the intersection-over-union measure in neural networks\", CVPR 2018",
         _ARXIV + "1705.08790"),
    ],
    "lovasz_hinge_loss": [
        ("Berman, Rannen Triki & Blaschko, \"The Lovász-Softmax loss ...\", CVPR 2018",
         _ARXIV + "1705.08790"),
    ],
    "boundary_loss": [
        ("Kervadec et al., \"Boundary loss for highly unbalanced segmentation\", MIDL 2019",
         _ARXIV + "1812.07032"),
        ("the same authors' extended version, Medical Image Analysis 2021",
         "https://doi.org/10.1016/j.media.2020.101851"),
    ],
    "cldice_loss": [
        ("Shit et al., \"clDice - a novel topology-preserving loss function for tubular structure "
         "segmentation\", CVPR 2021", _ARXIV + "2003.07311"),
    ],
    "dice_cldice_loss": [
        ("Shit et al., \"clDice - a novel topology-preserving loss function ...\", CVPR 2021",
         _ARXIV + "2003.07311"),
    ],
    "generalized_dice_focal_loss": [
        ("Sudre et al., \"Generalised Dice overlap as a deep learning loss function for highly "
         "unbalanced segmentations\", DLMIA 2017", _ARXIV + "1707.03237"),
        ("Lin et al., \"Focal loss for dense object detection\", ICCV 2017", _ARXIV + "1708.02002"),
    ],
    "hausdorff_dt_loss": [
        ("Karimi & Salcudean, \"Reducing the Hausdorff distance in medical image segmentation with "
         "convolutional neural networks\", IEEE Transactions on Medical Imaging, 2019",
         _ARXIV + "1904.10030"),
    ],
    "skeleton_recall_loss": [
        ("Kirchhoff et al., \"Skeleton recall loss for connectivity conserving and resource "
         "efficient segmentation of thin tubular structures\", ECCV 2024", _ARXIV + "2404.03010"),
    ],
    "generalized_wasserstein_dice_loss": [
        ("Fidon et al., \"Generalised Wasserstein Dice score for imbalanced multi-class "
         "segmentation using holistic convolutional networks\", BrainLes 2017", _ARXIV + "1707.00478"),
    ],
    "topk_loss": [
        ("Wu, Shen & van den Hengel, \"Bridging category-level and instance-level semantic image "
         "segmentation\", 2016", _ARXIV + "1605.06885"),
        ("Isensee et al., \"nnU-Net\", Nature Methods, 2021 (`TopKLoss`)",
         "https://doi.org/10.1038/s41592-020-01008-z"),
    ],
}

_UNIFIED_FOCAL = ("Yeung, Sala, Schönlieb & Rundo, \"Unified Focal loss: generalising Dice and cross "
                  "entropy-based losses to handle class imbalanced medical image segmentation\", "
                  "Computerized Medical Imaging and Graphics, 2022", _ARXIV + "2102.04525")
for _name in ("symmetric_focal_loss", "asymmetric_focal_loss", "symmetric_focal_tversky_loss",
              "asymmetric_focal_tversky_loss", "symmetric_unified_focal_loss",
              "asymmetric_unified_focal_loss"):
    REFERENCES[_name] = [_UNIFIED_FOCAL]
REFERENCES["hybrid_focal_loss"].append(_UNIFIED_FOCAL)
