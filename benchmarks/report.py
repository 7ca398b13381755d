"""Turn the raw records into ``results.md`` (ratio tables, targets) and ``results.png``.

Ratios are medians over medians: a contender's median forward + backward time divided by
lossfns' (torch eager) median for the same loss and case, so below 1 means faster than
lossfns. ``lossfns / floor`` divides by the median of ``(p * t).sum()`` on the same tensors.
The headline tables are wall-clock time with each framework's default threads; the
one-thread view (process CPU time) follows them (:mod:`benchmarks.views`), then the thread
scaling, the per-call overhead case (:mod:`benchmarks.overhead`) and the performance
targets (:mod:`benchmarks.targets`).
"""

from __future__ import annotations

from pathlib import Path

from .cases import get_case
from .contenders import CONTENDER_NAMES, CONTENDERS, PEER_NOTES
from .targets import PEERS, targets  # noqa: F401  (PEERS: the name older callers import)
from .views import (BASE, FLOOR, HEADLINE, ONE_THREAD, Table, headline_threads, median_ratio, middle,  # noqa: F401
                    overhead_rows, spread, threads_of)


def _x(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}×"


def _ms(value):
    return "—" if value is None else f"{value * 1e3:.1f}"


def _us(value):
    return "—" if value is None else f"{value * 1e6:.0f}"


def _mb(value):
    return "—" if value is None else f"{max(value, 0.0):.0f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


CLOCKS = {"cpu": "process CPU time", "wall": "wall clock",
          "device": "device time: CUDA events for torch, wall clock to block_until_ready for JAX"}


def view_label(t) -> str:
    """How a view was timed, e.g. "wall clock, each framework's default threads (torch: 2)"."""
    torch_threads = t.torch_threads()
    threads = {0: "each framework's default threads", 1: "one thread per framework"}.get(
        t.threads, f"{t.threads} threads per framework")
    if t.threads == 0 and torch_threads:
        threads += f" (torch: {torch_threads})"
    return f"{CLOCKS[t.clock]}, {threads}"

def markdown(data) -> str:
    t, one = Table(data, HEADLINE), Table(data, ONE_THREAD)
    out = ["# lossfns benchmarks", "", _run_line(data, t), "",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in data["machine"]["versions"].items()) + "."]
    quick = data["settings"].get("quick", False)
    out += ["", "Cases: " + "; ".join(f"`{c}` {get_case(c, quick).describe()}" for c in t.cases) + "."]
    out += _time_sections(t, f"headline: {view_label(t)}")
    if one.median:
        out += _time_sections(one, f"second view: {view_label(one)}", medians=False)
    scaling = scaling_table(t, one)
    if scaling:
        out += ["", "## Thread scaling (lossfns, torch eager, wall clock)", "", scaling]
    out += _overhead_sections(data)
    out += ["", "## Peak working memory of one step (MB)", "",
            "Memory allocated during forward + backward beyond the inputs (method: "
            f"{_memory_methods(data)}). `inputs MB`: prediction + target as fed to lossfns.", ""]
    rows = [(c, l, _mb(t.inputs.get((c, l, BASE))), *(_mb(t.peak.get((c, l, k))) for k in t.contenders if k != FLOOR))
            for c, l in t.rows()]
    out.append(_table(["case", "loss", "inputs MB", *(k for k in t.contenders if k != FLOOR)], rows))
    out += _targets_section(data)
    out += ["", "## Contenders", ""]
    out += [f"* `{c}`: {CONTENDERS[c].description}." + (f" {PEER_NOTES[c]}" if c in PEER_NOTES else "")
            for c in CONTENDER_NAMES]
    if t.skipped:
        out += ["", "Skipped: " + "; ".join(f"`{c}` ({why})" for c, why in t.skipped.items()) + "."]
    notes = t.notes + one.notes + _contention_notes(t) + _contention_notes(one)
    if notes:
        out += ["", "## Notes", ""] + [f"* {n}" for n in notes]
    if t.errors:
        out += ["", "## Errors", ""] + [f"* {e}" for e in t.errors]
    return "\n".join(out) + "\n"


#: A figure timed while other processes took more than this share of the CPUs is noted.
BUSY = 0.2


def _contention_notes(t) -> list:
    busy = sorted((share, key) for key, share in t.others.items() if share > BUSY)
    return [f"{case} / {loss} / {who} ({view_label(t)}): timed while other processes took {share:.0%} of "
            "the CPUs" for share, (case, loss, who) in busy]


def _others_line(t) -> str:
    shares = sorted(t.others.values())
    if not shares:
        return ""
    return (f" Other processes' share of the CPUs while a headline figure was timed: median "
            f"{middle(shares):.0%}, highest {shares[-1]:.0%}.")


def _run_line(data, t) -> str:
    settings, machine = data["settings"], data["machine"]
    loads = [s["load_average_1min_at_start"] for s in data.get("stages", [])
             if s.get("load_average_1min_at_start") is not None]
    if not loads and machine.get("load_average_1min_at_start") is not None:
        loads = [machine["load_average_1min_at_start"]]
    load = "unknown" if not loads else f"{min(loads):.1f}–{max(loads):.1f}" if len(loads) > 1 else f"{loads[0]:.1f}"
    gpu = f"{machine['gpu']} (device {settings.get('device')}) with " if machine.get("gpu") else ""
    return (f"`{data['command']}` — {gpu}{machine['cpu']}, {machine['cores']} cores "
            f"(1-min load average {load} at the start of each stage), Python {machine['python']}, "
            f"warm-up {settings['warmup']}, median of ≥ {settings['repeats']} timed runs (more until they "
            f"add up to {settings.get('min_time_s', 0)} s), total {data['wall_s'] / 60:.1f} min. "
            f"Headline figures: {view_label(t)}." + _others_line(t))


def _time_sections(t, label, medians=True) -> list:
    others = [c for c in t.contenders if c not in (BASE, FLOOR)]
    out = ["", f"## Forward + backward time relative to lossfns (torch eager), {label}", "",
           "Each cell: contender median / lossfns median for the same loss and case (below 1: faster "
           "than lossfns). `lossfns / floor`: lossfns over `(p * t).sum()` forward + backward.", ""]
    rows = [(c, l, _ms(t.median.get((c, l, BASE))), _x(t.floor_ratio(c, l)),
             *(_x(t.ratio(c, l, k)) for k in others)) for c, l in t.rows()]
    out.append(_table(["case", "loss", "lossfns ms", "lossfns / floor", *others], rows))
    if not medians:
        return out
    out += ["", f"## Median times (ms), {label}", ""]
    rows = [(c, l, *(_ms(t.median.get((c, l, k))) for k in t.contenders if k != FLOOR)) for c, l in t.rows()]
    out.append(_table(["case", "loss", *(k for k in t.contenders if k != FLOOR)], rows))
    floors = [f"{c} {_ms(t.median.get((c, FLOOR, FLOOR)))} ms" for c in t.cases if (c, FLOOR, FLOOR) in t.median]
    if floors:
        out += ["", "Floor `(p * t).sum()` forward + backward: " + ", ".join(floors) + "."]
    return out


def scaling_table(t, one) -> str:
    """lossfns' wall time with the headline's threads against one thread, per case and loss."""
    threads = {case: t.threads_used.get((case, BASE)) for case in t.cases}
    rows = []
    for case, loss in t.rows():
        many, single = t.wall.get((case, loss, BASE)), one.wall.get((case, loss, BASE))
        if many is not None and single is not None and threads[case]:
            rows.append((case, loss, _ms(single), threads[case], _ms(many), _x(many / single)))
    header = ["case", "loss", "1 thread ms", "threads", "default threads ms", "default / 1 thread"]
    return _table(header, rows) if rows else ""


def _overhead_sections(data) -> list:
    rows = overhead_rows(data)
    if not rows:
        return []
    current = data["overhead"]["current"]
    out = ["", "## Per-call overhead (tiny inputs, one thread)", "",
           f"Logits {current['shape']} channels-first, labels {current['labels']}, one thread; lossfns' torch "
           "modules (`from_logits=True`) against MONAI's (`softmax=True, to_onehot_y=True`). One step: clone "
           "the logits with `requires_grad`, forward, backward. Median wall time per step over "
           f"{current['repeats']} blocks of {current['steps_per_block']} steps (lossfns' and MONAI's blocks "
           "alternate), with the range over the blocks; aten ops: top-level `aten::` operations per step "
           "(torch.profiler).", "", overhead_table(data)]
    if any(row["before"] for row in rows):
        out += ["", "## Aten operations per step, before and after", "",
                "`before`: the library before the one-call, one-pass changes, measured by the same script "
                "(its source revision is in `results.json`).", "", before_after_table(data)]
    return out


def overhead_table(data) -> str:
    rows = []
    for row in overhead_rows(data):
        ours, monai = row["lossfns"] or {}, row["monai"] or {}
        rows.append((row["loss"], _timing(ours), _timing(monai), _x(median_ratio(ours, monai)),
                     spread(row["pair_ratios"]), _ops(ours), _ops(monai)))
    header = ["loss", "lossfns µs", "MONAI µs", "lossfns / MONAI", "per-block range", "lossfns aten ops",
              "MONAI aten ops"]
    return _table(header, rows)


def before_after_table(data) -> str:
    rows = []
    for row in overhead_rows(data):
        before, after, monai = row["before"] or {}, row["lossfns"] or {}, row["monai"] or {}
        rows.append((row["loss"], _ops(before), _ops(after), _ops(monai), _timing(before), _timing(after)))
    return _table(["loss", "aten ops before", "aten ops after", "MONAI aten ops", "µs before", "µs after"], rows)


def _timing(entry) -> str:
    if not entry:
        return "—"
    return f"{_us(entry['median_wall_s'])} ({_us(entry['min_wall_s'])}–{_us(entry['max_wall_s'])})"


def _ops(entry) -> str:
    return "—" if not entry else f"{entry['aten_ops']:.0f}"


def _targets_section(data) -> list:
    found = targets(data)
    out = ["", "## Performance targets", ""]
    if not found:
        return out + ["No target could be evaluated from the selected cases and contenders."]
    rows = [(f["target"], f["case"], f["loss"], f"{f['value']:.2f}", f"≤ {f['goal']}",
             "met" if f["met"] else "**missed**", f["detail"]) for f in found]
    return out + [_table(["target", "case", "loss", "measured", "goal", "result", "detail"], rows)]


def _memory_methods(data):
    methods = sorted({r["memory_method"] for r in data["records"] if "memory_method" in r})
    return "; ".join(methods) or "not measured"


def plot(data, path: Path):
    """One panel per case: each contender's time over lossfns' (log scale), grouped by loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    t = Table(data)
    contenders = [c for c in t.contenders if c != FLOOR]
    if not t.cases or not contenders:
        return
    colours = {c: plt.get_cmap("tab20")(i) for i, c in enumerate(contenders)}
    columns = min(3, len(t.cases))
    rows = -(-len(t.cases) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4 * rows), squeeze=False)
    for ax, case in zip(axes.flat, t.cases):
        present = [c for c in contenders if any((case, l, c) in t.median for l in t.losses)]
        width = 0.8 / len(present)
        for i, contender in enumerate(present):
            offset = (i - len(present) / 2 + 0.5) * width
            bars = [(j + offset, t.ratio(case, loss, contender)) for j, loss in enumerate(t.losses)]
            bars = [(x, h) for x, h in bars if h]
            ax.bar([x for x, _ in bars], [h for _, h in bars], width, color=colours[contender],
                   label=contender)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(range(len(t.losses)), t.losses, rotation=15, fontsize=8)
        ax.set_title(case)
        ax.set_ylabel("time / lossfns (torch eager)")
        ax.legend(fontsize=7, ncol=2)
    for ax in list(axes.flat)[len(t.cases):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: Columns of the ratio tables on the docs' performance page: (header, contender).
TABLE_COLUMNS = (("compiled", "lossfns_compile"), ("JAX jit", "lossfns_jax"), ("TF function", "lossfns_tf"),
                 ("MONAI", "monai"), ("smp", "smp"), ("naive", "naive"))


def performance_tables(data) -> str:
    """The performance tables of the docs (``docs/guides/performance.md``), generated from one
    run: the headline ratios (every float32 case and loss), the one-thread view, the thread
    scaling, the per-call overhead and its operations before and after, then each target with
    how often it is met. The docs build draws them from ``results.json``; ``--report-only
    --readme`` prints them (the flag is named after the README, where they were shown first)."""
    t, one = Table(data, HEADLINE), Table(data, ONE_THREAD)
    parts = [f"**Headline: {view_label(t)}.**", _ratio_table(t)]
    if one.median:
        parts += [f"**Second view: {view_label(one)}.**", _ratio_table(one)]
    scaling = scaling_table(t, one)
    if scaling:
        parts += ["**Thread scaling: lossfns (torch eager), wall clock.**", scaling]
    if overhead_rows(data):
        parts += ["**Per-call overhead: logits [2, 4, 8, 8, 8] channels-first, int64 labels, one thread; "
                  "median µs per step (range over the blocks).**", overhead_table(data)]
        if any(row["before"] for row in overhead_rows(data)):
            parts += ["**Top-level aten operations per step, before and after the one-call, one-pass "
                      "changes.**", before_after_table(data)]
    parts += ["**Performance targets.**", _target_summary(data)]
    return "\n\n".join(parts) + "\n"


def _ratio_table(t) -> str:
    columns = [(name, c) for name, c in TABLE_COLUMNS if c in t.contenders]
    rows = []
    for case, loss in t.rows():
        if case.endswith("_bf16") or loss == FLOOR:
            continue
        rows.append([case, loss, _ms(t.median.get((case, loss, BASE))), _x(t.floor_ratio(case, loss))]
                    + [_x(t.ratio(case, loss, contender)) for _, contender in columns])
    header = ["case", "loss", "lossfns ms", "lossfns / floor"] + [f"{name} / lossfns" for name, _ in columns]
    return _table(header, rows)


def _target_summary(data) -> str:
    by_target = {}
    for found in targets(data):
        by_target.setdefault(found["target"], []).append(found)
    summary = []
    for target, found in by_target.items():
        best, worst = min(found, key=lambda f: f["value"]), max(found, key=lambda f: f["value"])
        summary.append([target, f"{sum(f['met'] for f in found)} of {len(found)}", _where(best), _where(worst)])
    return _table(["target", "met", "best", "worst"], summary)


# The names the command line (``--readme``) and older callers use.
readme_summary = performance_tables
README_COLUMNS = TABLE_COLUMNS


def _where(found):
    detail = f", {found['detail']}" if found["detail"] else ""
    return f"{found['value']:.2f} ({found['case']} {found['loss']}{detail})"


def write(data, out_dir: Path):
    out_dir = Path(out_dir)
    (out_dir / "results.md").write_text(markdown(data))
    plot(data, out_dir / "results.png")
