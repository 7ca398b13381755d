"""The performance targets, each checked where the run has the figures it needs.

Every target is a ratio with a goal it must not exceed; :func:`targets` returns one entry
per (target, case, loss) found. Time targets read the headline view (wall clock, each
framework's default threads; see :mod:`benchmarks.views`); the thread-scaling target also
reads the one-thread view; the overhead targets read the overhead case.
"""

from __future__ import annotations

from .cases import REGION_LOSSES
from .views import BASE, FLOOR, HEADLINE, ONE_THREAD, Table, median_ratio, overhead_rows, spread

PEERS = ("monai", "smp", "keras")
#: The cross-entropy family (the benchmark's unified focal takes probabilities; the target
#: names it with the family).
CE_LOSSES = ("categorical_focal", "binary_focal", "unified_focal")
COMPILED_FRAMEWORKS = ("lossfns_jax", "lossfns_tf")
#: Compound losses and the MONAI module each is compared with (same case, same inputs).
COMPOUND_GOALS = {"dice_ce": ("DiceCE ≤ 0.7× MONAI DiceCELoss", 0.7),
                  "generalized_dice": ("generalized Dice ≤ 0.7× MONAI", 0.7)}
#: 16-class integer labels over one-hot time of the region losses in the committed run
#: before this target was set (one thread, CPU time): it may not get worse.
SPARSE_16_BEFORE = {"dice": 0.77, "tversky": 0.81}
#: The case and loss of the thread-scaling target.
SCALING = ("3d", "dice")


class Found(list):
    """The targets found so far; ``add`` skips a target whose figure is missing."""

    def add(self, target, case, loss, value, goal, detail=""):
        if value is not None:
            self.append({"target": target, "case": case, "loss": loss, "value": value, "goal": goal,
                         "met": value <= goal, "detail": detail})


def targets(data) -> list[dict]:
    """Every performance target the run has figures for (see the module docstring)."""
    t, found = Table(data, HEADLINE), Found()
    for case in t.cases:
        _region(t, case, found)
        _cross_entropy(t, case, found)
        _others(t, case, found)
    _labels(t, found)
    _precision(t, found)
    _thread_scaling(t, Table(data, ONE_THREAD), found)
    _overhead(data, found)
    return list(found)


def _peak_over_floor(t, case, loss):
    top, bottom = t.peak.get((case, loss, BASE)), t.peak.get((case, FLOOR, FLOOR))
    return None if top is None or not bottom else max(top, 0.0) / bottom


def _region(t, case, found):
    for loss in REGION_LOSSES:
        peers = {p: t.median[(case, loss, p)] for p in PEERS if (case, loss, p) in t.median}
        base = t.median.get((case, loss, BASE))
        if peers and base is not None:
            fastest = min(peers, key=peers.get)
            found.add("region eager ≤ 0.7× fastest peer", case, loss, base / peers[fastest], 0.7, f"vs {fastest}")
        found.add("region eager ≤ 1.3× floor", case, loss, t.floor_ratio(case, loss), 1.3)
        found.add("compiled ≤ 1.0× floor", case, loss, t.floor_ratio(case, loss, "lossfns_compile"), 1.0)


def _cross_entropy(t, case, found):
    for loss in CE_LOSSES:
        found.add("CE family ≤ 0.6× MONAI", case, loss, t.ratio(case, loss, BASE, base="monai"), 0.6)
        found.add("CE family ≤ 4× floor", case, loss, t.floor_ratio(case, loss), 4.0)
        found.add("CE family peak ≤ 2× floor's", case, loss, _peak_over_floor(t, case, loss), 2.0)


def _others(t, case, found):
    for loss, (target, goal) in COMPOUND_GOALS.items():
        found.add(target, case, loss, t.ratio(case, loss, BASE, base="monai"), goal)
    found.add("Lovász-Softmax eager ≤ 0.8× smp", case, "lovasz_softmax",
              t.ratio(case, "lovasz_softmax", BASE, base="smp"), 0.8)
    found.add("clDice eager ≤ 1.0× MONAI", case, "cldice", t.ratio(case, "cldice", BASE, base="monai"), 1.0)
    found.add("Wasserstein Dice eager ≤ 0.7× MONAI", case, "wasserstein_dice",
              t.ratio(case, "wasserstein_dice", BASE, base="monai"), 0.7)
    found.add("top-k eager ≤ 1.0× nnU-Net", case, "topk", t.ratio(case, "topk", BASE, base="nnunet"), 1.0)
    for loss in t.losses:
        for other in COMPILED_FRAMEWORKS:
            found.add("jax/tf ≤ 1.5× torch eager", case, loss, t.ratio(case, loss, other), 1.5, other)


def _labels(t, found):
    """Integer labels against float one-hot targets: same loss, same classes, same shape."""
    for loss in t.losses:
        found.add("integer labels ≤ 1.0× one-hot time (4 classes)", "3d_sparse", loss,
                  _case_ratio(t, "3d_sparse", "3d", loss), 1.0)
        sparse = _case_ratio(t, "3d16_sparse", "3d16_onehot", loss)
        found.add("sparse 16-class ≤ 0.6× one-hot time", "3d16", loss, sparse, 0.6)
        if loss in SPARSE_16_BEFORE:
            found.add("sparse 16-class no slower than before", "3d16", loss, sparse, SPARSE_16_BEFORE[loss],
                      f"before {SPARSE_16_BEFORE[loss]:.2f}")
        top, bottom = t.peak.get(("3d16_sparse", loss, BASE)), t.peak.get(("3d16_sparse", FLOOR, FLOOR))
        detail = "" if top is None or bottom is None else f"{max(top, 0.0):.0f} vs {bottom:.0f} MB"
        found.add("sparse 16-class peak ≤ 1.1× floor's", "3d16_sparse", loss,
                  _peak_over_floor(t, "3d16_sparse", loss), 1.1, detail)


def _case_ratio(t, case, other, loss, figures=None):
    figures = t.median if figures is None else figures
    top, bottom = figures.get((case, loss, BASE)), figures.get((other, loss, BASE))
    return None if top is None or not bottom else max(top, 0.0) / bottom


def _precision(t, found):
    for case in (c for c in t.cases if c.endswith("_bf16")):
        f32 = case.removesuffix("_bf16")
        for loss in t.losses:
            found.add("bf16 ≤ 1.0× f32 time", case, loss, _case_ratio(t, case, f32, loss), 1.0)
            found.add("bf16 peak ≤ f32 peak", case, loss, _case_ratio(t, case, f32, loss, t.peak), 1.0)


def _thread_scaling(t, one, found):
    """lossfns' own wall time with the default threads over its one-thread wall time."""
    case, loss = SCALING
    many, single = t.wall.get((case, loss, BASE)), one.wall.get((case, loss, BASE))
    threads = t.threads_used.get((case, BASE))
    if many is None or single is None or not threads or threads < 2:
        return
    found.add("default threads ≤ 0.8× one thread (wall)", case, loss, many / single, 0.8,
              f"{threads} vs 1 threads")


def _overhead(data, found):
    for row in overhead_rows(data):
        ours, monai = row["lossfns"], row["monai"]
        if ours is None or monai is None:
            continue
        found.add("per-call overhead ≤ 0.8× MONAI time", "overhead", row["loss"], median_ratio(ours, monai), 0.8,
                  f"{ours['median_wall_s'] * 1e6:.0f} vs {monai['median_wall_s'] * 1e6:.0f} µs, "
                  f"per repeat {spread(row['pair_ratios'])}")
        found.add("per-call aten ops ≤ MONAI's", "overhead", row["loss"], ours["aten_ops"] / monai["aten_ops"], 1.0,
                  f"{ours['aten_ops']:.0f} vs {monai['aten_ops']:.0f} ops")
