"""The per-call overhead case: tiny inputs, one thread, lossfns' torch modules against MONAI's.

``python -m benchmarks.overhead --out overhead.json [--quick] [--lossfns-path DIR --label before]``

On ``[2, 4, 8, 8, 8]`` channels-first logits with int64 labels the arithmetic is negligible,
so a step's time is what a call costs in Python and in operator dispatch. One step clones
the logits with ``requires_grad``, runs the module and calls ``backward()``, as a training
loop does. Two figures per module:

* **time per step**: blocks of ``steps`` steps, lossfns' block and MONAI's alternating, so
  that a change in the machine's speed hits both alike; the median block (per step) is
  reported with the spread over the repeats, wall clock (one thread) and CPU time.
* **top-level aten operations per step**, counted with ``torch.profiler``: every event named
  ``aten::*`` whose parent is not itself an ``aten::`` event. An operator's internal
  sub-operators are left out; backward operators (children of autograd nodes) are counted.

``--lossfns-path DIR`` imports lossfns (and ``lossfns.adapters``) from another checkout, to
count an earlier version with the same script. The result goes to ``results.json`` under
``"overhead"`` (``python -m benchmarks --cases overhead [--before DIR]`` runs this module).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

from . import machine
from .cases import Case, channels_first, make_arrays

CASE = "overhead"
SHAPE_CASE = Case(CASE, 2, (8, 8, 8), 4, sparse=True)
#: The losses measured: the benchmark name, the torch adapter's class and arguments.
LOSSES = {
    "dice": ("DiceLoss", {}),
    "tversky": ("TverskyLoss", {}),  # its defaults are α=0.3, β=0.7, as MONAI's below
    "dice_ce": ("DiceCELoss", {}),
    "generalized_dice": ("GeneralizedDiceLoss", {}),
    "categorical_focal": ("CategoricalFocalLoss", {}),  # γ=2 by default, as MONAI's
}
#: MONAI's modules for the same losses, from logits with integer labels.
MONAI = {
    "dice": ("DiceLoss", {}),
    "tversky": ("TverskyLoss", {"alpha": 0.3, "beta": 0.7}),
    "dice_ce": ("DiceCELoss", {}),
    "generalized_dice": ("GeneralizedDiceLoss", {}),
    "categorical_focal": ("FocalLoss", {"gamma": 2.0, "use_softmax": True}),
}
CONTENDERS = ("lossfns", "monai")
#: (steps per block, repeats, profiled steps) of a full and a --quick run.
FULL, QUICK = (200, 15, 5), (5, 2, 2)


def use_lossfns_from(path: str | None):
    """Import lossfns from ``path`` (first on ``sys.path``); returns ``lossfns.__file__``.

    Must run before anything imports lossfns; it checks that the core and the adapters
    really came from ``path``, since an installed lossfns would otherwise win silently.
    """
    if path is not None:
        sys.path.insert(0, str(Path(path).resolve()))
    import lossfns
    import lossfns.adapters.torch as adapters

    if path is not None:
        root = Path(path).resolve()
        for module in (lossfns, adapters):
            if root not in Path(module.__file__).resolve().parents:
                raise SystemExit(f"--lossfns-path {path}: {module.__name__} came from {module.__file__}")
    return lossfns.__file__


def modules(peer: bool) -> dict:
    """``{(contender, loss): module}`` for the adapters (and MONAI's when ``peer``)."""
    import lossfns.adapters.torch as adapters

    found = {("lossfns", name): getattr(adapters, cls)(from_logits=True, **kw) for name, (cls, kw) in LOSSES.items()}
    if peer:
        from monai import losses

        for name, (cls, kw) in MONAI.items():
            softmax = {} if "use_softmax" in kw else {"softmax": True}
            found[("monai", name)] = getattr(losses, cls)(to_onehot_y=True, **softmax, **kw)
    return found


def inputs():
    """Logits ``[2, 4, 8, 8, 8]`` and int64 labels ``[2, 8, 8, 8]`` (and ``[2, 1, 8, 8, 8]``,
    the shape MONAI takes; made once, so no contender pays for a reshape in its step)."""
    import torch

    arrays = make_arrays(SHAPE_CASE)
    logits = torch.from_numpy(channels_first(arrays.logits))
    labels = torch.from_numpy(arrays.labels)
    return logits, {"lossfns": labels, "monai": labels.unsqueeze(1)}


def make_step(module, logits, target):
    def step():
        x = logits.clone().requires_grad_(True)
        module(x, target).backward()

    return step


def top_level_aten_ops(step, steps: int) -> tuple[float, dict]:
    """Top-level ``aten::`` events per step, in total and by name (see the module docstring)."""
    from torch.profiler import ProfilerActivity, profile

    step()  # lazily built state (caches, first-call paths) stays out of the count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    names = collections.Counter()
    for event in prof.events():
        parent = event.cpu_parent
        if event.name.startswith("aten::") and (parent is None or not parent.name.startswith("aten::")):
            names[event.name] += 1
    per_step = {name: count / steps for name, count in names.most_common()}
    return sum(names.values()) / steps, per_step


def _block(step, steps: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def time_interleaved(steps_by_name: dict, steps: int, repeats: int, gate=None) -> dict:
    """``{name: (wall per step per block, cpu per step per block)}``, the names' blocks in turn.

    A round (one block of each name) timed while other processes held the CPUs is dropped
    when ``gate`` (a :class:`machine.QuietGate`) says so, and timed again."""
    for step in steps_by_name.values():  # warm-up: allocator, dispatch caches, MONAI's first call
        _block(step, max(steps // 4, 1))
    times = {name: ([], []) for name in steps_by_name}
    while min(len(wall) for wall, _ in times.values()) < repeats:
        start = time.perf_counter()
        with machine.OtherLoad() as load:
            blocks = {name: _block(step, steps) for name, step in steps_by_name.items()}
        if gate is None or gate.keep(load, time.perf_counter() - start):
            for name, (wall, cpu) in blocks.items():
                times[name][0].append(wall)
                times[name][1].append(cpu)
    return times


def _summary(wall: list, cpu: list, ops: float, by_name: dict) -> dict:
    return {"median_wall_s": statistics.median(wall), "min_wall_s": min(wall), "max_wall_s": max(wall),
            "median_cpu_s": statistics.median(cpu), "wall_s": wall, "cpu_s": cpu,
            "aten_ops": ops, "aten_ops_by_name": by_name}


def measure(*, quick=False, lossfns_path=None, label="current", peer=True, quiet_wait=0.0) -> dict:
    """The overhead case for every loss: time and aten operations per step, JSON-ready.

    Before each loss it waits up to ``quiet_wait`` seconds for a quiet machine; each entry
    records the share of the CPUs other processes took while it was timed."""
    lossfns_file = use_lossfns_from(lossfns_path)
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the case is defined on one thread (the parent also sets OMP_NUM_THREADS)
    try:
        steps, repeats, profiled = QUICK if quick else FULL
        logits, targets = inputs()
        built = modules(peer)
        losses = {}
        for loss in LOSSES:
            here = {who: make_step(built[(who, loss)], logits, targets[who])
                    for who in CONTENDERS if (who, loss) in built}
            machine.wait_until_quiet(quiet_wait)
            gate = machine.QuietGate(quiet_wait)
            times = time_interleaved(here, steps, repeats, gate)
            losses[loss] = {who: dict(_summary(*times[who], *top_level_aten_ops(here[who], profiled)),
                                      other_cpu_share=gate.other_share, rounds_dropped_for_load=gate.dropped)
                            for who in here}
    finally:
        torch.set_num_threads(previous)
    root = Path(lossfns_path).resolve() if lossfns_path else None
    return {"label": label, "shape": [SHAPE_CASE.batch, SHAPE_CASE.classes, *SHAPE_CASE.spatial],
            "labels": "int64 [2, 8, 8, 8] (MONAI: [2, 1, 8, 8, 8])", "threads": 1,
            "steps_per_block": steps, "repeats": repeats, "profiled_steps": profiled, "quick": quick,
            "lossfns_file": lossfns_file, "lossfns_source": machine.source_state(root),
            "versions": {"torch": torch.__version__, **_monai_version(peer)}, "losses": losses}


def _monai_version(peer: bool) -> dict:
    if not peer:
        return {}
    import monai

    return {"monai": monai.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="a few steps (smoke test)")
    parser.add_argument("--lossfns-path", help="import lossfns from this checkout (e.g. an earlier commit)")
    parser.add_argument("--label", default="current", help="name of this measurement in results.json")
    parser.add_argument("--no-peer", action="store_true", help="lossfns only (MONAI is measured once, by the current run)")
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="seconds to wait, at most, for a quiet machine")
    args = parser.parse_args(argv)
    result = measure(quick=args.quick, lossfns_path=args.lossfns_path, label=args.label, peer=not args.no_peer,
                     quiet_wait=args.quiet_wait)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
