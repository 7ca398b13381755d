"""Where the time goes: operator profile of one torch forward + backward step.

``python -m benchmarks.profile --case 3d --losses dice,unified_focal --contenders lossfns_torch,naive``

For every (loss, contender) it prints the number of *full-tensor passes* per step and the
operators with the most self time, with their input shapes. A pass is one ATen kernel call
weighted by the size of its largest input relative to the prediction (a kernel over a
``[batch, 1, ...]`` slice counts ``1/C``); views and thin wrappers that only dispatch to
another counted kernel are left out. These losses are memory-bound, so on CPU the pass count
predicts their time far better than a wall clock on a busy machine does. Single-threaded
unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from .cases import LOSS_NAMES, get_case, get_loss, make_arrays
from .contenders import CONTENDERS
from .worker import TorchInputs, torch_step

TORCH_CONTENDERS = tuple(name for name, c in CONTENDERS.items() if c.framework == "torch" and name != "floor")

#: Views, allocations and composite operators whose work shows up as another counted kernel.
NOT_PASSES = frozenset(f"aten::{name}" for name in (
    "to", "_to_copy", "contiguous", "reshape", "clone", "expand", "expand_as", "view", "as_strided",
    "unsqueeze", "squeeze", "permute", "movedim", "slice", "select", "transpose", "t", "alias",
    "detach", "_reshape_alias", "empty", "empty_like", "empty_strided", "zeros", "zeros_like",
    "ones_like", "full_like", "new_zeros", "new_empty", "type_as", "flatten", "unflatten", "narrow",
    "split", "chunk", "unbind", "lift_fresh", "result_type", "resolve_conj", "resolve_neg", "item",
    "_local_scalar_dense", "sum_to_size", "masked_fill", "log_softmax", "softmax", "log_sigmoid",
    "one_hot", "take_along_dim", "rsub", "stack", "linalg_vecdot", "logsumexp", "is_nonzero",
    "numpy_T", "broadcast_to", "expand_copy",
))


def profile_step(step, full: int, repeats: int):
    """``(passes, total_ms, rows)`` per step; rows are ``(ms, calls, name, shapes, weight)``.

    ``full`` is the number of elements of the prediction.
    """
    from torch.profiler import ProfilerActivity, profile

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(repeats):
            step()
    rows, passes, total = [], 0.0, 0.0
    for event in prof.key_averages(group_by_input_shape=True):
        ms = event.self_cpu_time_total / 1e3 / repeats
        total += ms
        calls = event.count / repeats
        weight = 0.0
        if event.key.startswith("aten::") and event.key not in NOT_PASSES:
            weight = max([_numel(shape) for shape in event.input_shapes or []] + [0]) / full
        # Kernels over per-class statistics ([batch, C]) cost nothing next to the volume.
        weight = weight if weight >= 1e-3 else 0.0
        passes += calls * weight
        rows.append((ms, calls, event.key, event.input_shapes, weight))
    rows.sort(key=lambda row: -row[0])
    return passes, total, rows


def _numel(shape):
    if not isinstance(shape, (list, tuple)) or any(not isinstance(s, int) for s in shape):
        return 0
    count = 1
    for s in shape:
        count *= s
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--case", default="3d")
    parser.add_argument("--losses", default=",".join(LOSS_NAMES))
    parser.add_argument("--contenders", default="lossfns_torch,naive,monai")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    case = get_case(args.case, quick=args.quick)
    inputs = TorchInputs(case, make_arrays(case), "cpu")
    full = case.batch * int(torch.tensor(case.spatial).prod()) * case.classes
    summary = defaultdict(dict)
    for loss_name in args.losses.split(","):
        loss = get_loss(loss_name)
        for name in args.contenders.split(","):
            contender = CONTENDERS[name]
            if name not in TORCH_CONTENDERS or loss_name not in contender.losses:
                continue
            step = torch_step(contender.objective(loss, inputs), inputs.prediction(loss), inputs.target)
            passes, total, rows = profile_step(step, full, args.repeats)
            summary[loss_name][name] = passes
            print(f"\n## {case.name} / {loss_name} / {name}: {passes:.1f} full-tensor passes, "
                  f"{total:.1f} ms self CPU per step")
            for ms, calls, key, shapes, weight in rows[: args.top]:
                print(f"  {ms:8.2f} ms {100 * ms / total:5.1f}%  {calls:4.1f}× (pass {weight:.2f})  "
                      f"{key:24s} {str(shapes)[:90]}")
    print("\n## full-tensor passes per forward + backward step")
    names = [n for n in args.contenders.split(",") if any(n in row for row in summary.values())]
    print("| loss | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for loss_name, row in summary.items():
        print(f"| {loss_name} | " + " | ".join(f"{row[n]:.1f}" if n in row else "—" for n in names) + " |")


if __name__ == "__main__":
    main()
