"""Turn the raw records into ``results.md`` (ratio tables, targets) and ``results.png``.

Ratios are medians over medians: a contender's median forward + backward time divided by
lossfns' (torch eager) median for the same loss and case, so below 1 means faster than
lossfns. The clock is the process CPU time by default (``--clock wall`` for wall time). ``lossfns / floor`` divides by the median of ``(p * t).sum()`` on the same tensors.
"""

from __future__ import annotations

from pathlib import Path

from .cases import CASE_NAMES, LOSS_NAMES, REGION_LOSSES, get_case
from .contenders import CONTENDER_NAMES, CONTENDERS, PEER_NOTES

BASE = "lossfns_torch"
PEERS = ("monai", "smp", "keras")
FLOOR = "floor"


class Table:
    """Index of the records: ``median[(case, loss, contender)]`` and friends."""

    def __init__(self, data):
        clock = data["settings"].get("clock", "cpu")
        self.median, self.peak, self.inputs, self.errors, self.notes = {}, {}, {}, [], []
        self.skipped = {}
        for record in data["records"]:
            case, contender = record["case"], record["contender"]
            if "skipped" in record:
                self.skipped[contender] = record["skipped"]
            if "failed" in record:
                self.errors.append(f"{case} / {contender}: {record['failed']}")
            for entry in record.get("results", []):
                key = (case, entry["loss"], contender)
                if f"median_{clock}_s" in entry:
                    self.median[key] = entry[f"median_{clock}_s"]
                if "peak_mb" in entry:
                    self.peak[key] = entry["peak_mb"]
                self.inputs[key] = entry.get("inputs_mb")
                if "error" in entry:
                    self.errors.append(f"{case} / {entry['loss']} / {contender}: {entry['error']}")
                if "note" in entry:
                    self.notes.append(f"{case} / {entry['loss']} / {contender}: {entry['note']}")
        self.cases = [c for c in CASE_NAMES if any(k[0] == c for k in self.median)]
        self.contenders = [c for c in CONTENDER_NAMES if any(k[2] == c for k in self.median)]
        self.losses = [l for l in LOSS_NAMES if any(k[1] == l for k in self.median)]

    def ratio(self, case, loss, contender, base=BASE, base_loss=None):
        top = self.median.get((case, loss, contender))
        bottom = self.median.get((case, base_loss or loss, base))
        return None if top is None or bottom is None else top / bottom

    def floor_ratio(self, case, loss, contender=BASE):
        return self.ratio(case, loss, contender, base=FLOOR, base_loss=FLOOR)

    def rows(self):
        return [(c, l) for c in self.cases for l in self.losses
                if any((c, l, k) in self.median for k in self.contenders)]


def _x(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}×"


def _ms(value):
    return "—" if value is None else f"{value * 1e3:.1f}"


def _mb(value):
    return "—" if value is None else f"{max(value, 0.0):.0f}"


#: The cross-entropy family of the issue's target 3 (the benchmark's unified focal takes
#: probabilities; the target names it with the family).
CE_LOSSES = ("categorical_focal", "binary_focal", "unified_focal")
COMPILED_FRAMEWORKS = ("lossfns_jax", "lossfns_tf")


def targets(data) -> list[dict]:
    """The issue's performance targets, each measured where the needed figures exist."""
    t = Table(data)
    found = []

    def add(target, case, loss, value, goal, detail=""):
        if value is not None:
            found.append({"target": target, "case": case, "loss": loss, "value": value, "goal": goal,
                          "met": value <= goal, "detail": detail})

    def peak_over_floor(case, loss):
        top, bottom = t.peak.get((case, loss, BASE)), t.peak.get((case, FLOOR, FLOOR))
        return None if top is None or not bottom else max(top, 0.0) / bottom

    for case in t.cases:
        for loss in REGION_LOSSES:
            peers = {p: t.median[(case, loss, p)] for p in PEERS if (case, loss, p) in t.median}
            base = t.median.get((case, loss, BASE))
            if peers and base is not None:
                fastest = min(peers, key=peers.get)
                add("region eager ≤ 0.7× fastest peer", case, loss, base / peers[fastest], 0.7, f"vs {fastest}")
            add("region eager ≤ 1.3× floor", case, loss, t.floor_ratio(case, loss), 1.3)
            add("compiled ≤ 1.0× floor", case, loss, t.floor_ratio(case, loss, "lossfns_compile"), 1.0)
        for loss in CE_LOSSES:
            add("CE family ≤ 0.6× MONAI", case, loss, t.ratio(case, loss, BASE, base="monai"), 0.6)
            add("CE family ≤ 4× floor", case, loss, t.floor_ratio(case, loss), 4.0)
            add("CE family peak ≤ 2× floor's", case, loss, peak_over_floor(case, loss), 2.0)
        add("Lovász-Softmax eager ≤ 0.8× smp", case, "lovasz_softmax",
            t.ratio(case, "lovasz_softmax", BASE, base="smp"), 0.8)
        add("clDice eager ≤ 1.0× MONAI", case, "cldice", t.ratio(case, "cldice", BASE, base="monai"), 1.0)
        for loss in t.losses:
            for other in COMPILED_FRAMEWORKS:
                add("jax/tf ≤ 1.5× torch eager", case, loss, t.ratio(case, loss, other), 1.5, other)
    for loss in t.losses:
        add("sparse 16-class ≤ 0.6× one-hot time", "3d16", loss, _sparse_ratio(t, loss), 0.6)
        add("sparse 16-class peak ≤ 1.1× floor's", "3d16_sparse", loss, peak_over_floor("3d16_sparse", loss), 1.1,
            _peak_detail(t, "3d16_sparse", loss))
    for case in t.cases:
        if case.endswith("_bf16"):
            for loss in t.losses:
                add("bf16 ≤ 0.8× f32 time", case, loss, _bf16_ratio(t, case, loss), 0.8)
                add("bf16 peak ≤ f32 peak", case, loss, _bf16_ratio(t, case, loss, t.peak), 1.0)
    return found


def _sparse_ratio(t, loss):
    sparse, dense = t.median.get(("3d16_sparse", loss, BASE)), t.median.get(("3d16_onehot", loss, BASE))
    return None if sparse is None or dense is None else sparse / dense


def _peak_detail(t, case, loss):
    top, bottom = t.peak.get((case, loss, BASE)), t.peak.get((case, FLOOR, FLOOR))
    return "" if top is None or bottom is None else f"{max(top, 0.0):.0f} vs {bottom:.0f} MB"


def _bf16_ratio(t, case, loss, figures=None):
    figures = t.median if figures is None else figures
    bf16 = figures.get((case, loss, BASE))
    f32 = figures.get((case.removesuffix("_bf16"), loss, BASE))
    return None if bf16 is None or not f32 else max(bf16, 0.0) / f32


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(data) -> str:
    t = Table(data)
    settings, machine = data["settings"], data["machine"]
    others = [c for c in t.contenders if c not in (BASE, FLOOR)]
    out = ["# lossfns benchmarks", ""]
    clock = {"cpu": "process CPU time", "wall": "wall-clock time",
             "device": "device time: CUDA events for torch, wall clock to block_until_ready for JAX"
             }[settings.get("clock", "cpu")]
    load = machine.get("load_average_1min_at_start")
    load = "unknown" if load is None else f"{load:.1f}"
    gpu = f"{machine['gpu']} (device {settings.get('device')}) with " if machine.get("gpu") else ""
    out.append(f"`{data['command']}` — {gpu}{machine['cpu']}, {machine['cores']} cores "
               f"(1-min load average {load} at the start), Python {machine['python']}, "
               f"{settings['threads'] or 'default'} thread(s) per framework, warm-up {settings['warmup']}, "
               f"median of ≥ {settings['repeats']} timed runs (more until they add up to "
               f"{settings.get('min_time_s', 0)} s; {clock}), total {data['wall_s'] / 60:.1f} min.")
    out.append("")
    sources = sorted({str(stage.get("lossfns_source")) for stage in data.get("stages", [])}
                     or {str(machine.get("lossfns_source"))})
    out.append("Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
               + f"; lossfns source (git) {', '.join(sources)}.")
    quick = settings.get("quick", False)
    out += ["", "Cases: " + "; ".join(f"`{c}` {get_case(c, quick).describe()}" for c in t.cases) + "."]
    out += ["", "## Forward + backward time relative to lossfns (torch eager)", "",
            "Each cell: contender median / lossfns median for the same loss and case (below 1: faster "
            "than lossfns). `lossfns / floor`: lossfns over `(p * t).sum()` forward + backward.", ""]
    rows = [(c, l, _ms(t.median.get((c, l, BASE))), _x(t.floor_ratio(c, l)),
             *(_x(t.ratio(c, l, k)) for k in others)) for c, l in t.rows()]
    out.append(_table(["case", "loss", "lossfns ms", "lossfns / floor", *others], rows))

    out += ["", "## Median times (ms)", ""]
    rows = [(c, l, *(_ms(t.median.get((c, l, k))) for k in t.contenders if k != FLOOR)) for c, l in t.rows()]
    out.append(_table(["case", "loss", *(k for k in t.contenders if k != FLOOR)], rows))
    floors = [f"{c} {_ms(t.median.get((c, FLOOR, FLOOR)))} ms" for c in t.cases if (c, FLOOR, FLOOR) in t.median]
    if floors:
        out += ["", "Floor `(p * t).sum()` forward + backward: " + ", ".join(floors) + "."]

    out += ["", "## Peak working memory of one step (MB)", "",
            "Memory allocated during forward + backward beyond the inputs (method: "
            f"{_memory_methods(data)}). `inputs MB`: prediction + target as fed to lossfns.", ""]
    rows = [(c, l, _mb(t.inputs.get((c, l, BASE))), *(_mb(t.peak.get((c, l, k))) for k in t.contenders if k != FLOOR))
            for c, l in t.rows()]
    out.append(_table(["case", "loss", "inputs MB", *(k for k in t.contenders if k != FLOOR)], rows))

    found = targets(data)
    out += ["", "## Targets from the issue", ""]
    if found:
        rows = [(f["target"], f["case"], f["loss"], f"{f['value']:.2f}", f"≤ {f['goal']}",
                 "met" if f["met"] else "**missed**", f["detail"]) for f in found]
        out.append(_table(["target", "case", "loss", "measured", "goal", "result", "detail"], rows))
    else:
        out.append("No target could be evaluated from the selected cases and contenders.")

    out += ["", "## Contenders", ""]
    out += [f"* `{c}`: {CONTENDERS[c].description}." + (f" {PEER_NOTES[c]}" if c in PEER_NOTES else "")
            for c in CONTENDER_NAMES]
    if t.skipped:
        out += ["", "Skipped: " + "; ".join(f"`{c}` ({why})" for c, why in t.skipped.items()) + "."]
    if t.notes:
        out += ["", "## Notes", ""] + [f"* {n}" for n in t.notes]
    if t.errors:
        out += ["", "## Errors", ""] + [f"* {e}" for e in t.errors]
    return "\n".join(out) + "\n"


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


#: Columns of the summary table on the docs' performance page: (header, contender).
TABLE_COLUMNS = (("compiled", "lossfns_compile"), ("JAX jit", "lossfns_jax"), ("TF function", "lossfns_tf"),
                 ("MONAI", "monai"), ("smp", "smp"), ("naive", "naive"))


def performance_tables(data) -> str:
    """The performance tables of the docs (``docs/guides/performance.md``), generated from one
    run: every float32 case and loss with its ratios, then each target with how often it is
    met. The docs build draws them from ``results.json``; ``--report-only --readme`` prints
    them (the flag is named after the README, where they were shown first)."""
    t = Table(data)
    rows = []
    for case, loss in t.rows():
        if case.endswith("_bf16") or loss == FLOOR:
            continue
        rows.append([case, loss, _ms(t.median.get((case, loss, BASE))), _x(t.floor_ratio(case, loss))]
                    + [_x(t.ratio(case, loss, contender)) for _, contender in TABLE_COLUMNS])
    header = ["case", "loss", "lossfns ms", "lossfns / floor"] + [f"{name} / lossfns" for name, _ in TABLE_COLUMNS]
    by_target = {}
    for found in targets(data):
        by_target.setdefault(found["target"], []).append(found)
    summary = []
    for target, found in by_target.items():
        best, worst = min(found, key=lambda f: f["value"]), max(found, key=lambda f: f["value"])
        summary.append([target, f"{sum(f['met'] for f in found)} of {len(found)}",
                        _where(best), _where(worst)])
    return "\n\n".join([_table(header, rows),
                         _table(["target", "met", "best", "worst"], summary)]) + "\n"


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
