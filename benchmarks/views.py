"""Indexes of a benchmark run (``results.json``) that the report and the targets read.

A run holds records of two thread settings, read as two *views*:

* the **headline** view: each framework's default number of threads (``--threads 0``),
  timed by the wall clock (``settings["clock"]``; ``device`` on CUDA), what a user waits for;
* the **one-thread** view: ``--threads 1`` records, timed in process CPU time, the same
  compute for every contender and robust on a shared machine.

Runs saved before records carried their thread count were all one thread, CPU time; they
read as a headline view of one thread and have no second view.
"""

from __future__ import annotations

import statistics

from .cases import CASE_NAMES, LOSS_NAMES
from .contenders import CONTENDER_NAMES

BASE = "lossfns_torch"
FLOOR = "floor"
HEADLINE, ONE_THREAD = "headline", "one thread"


def threads_of(record, settings) -> int:
    """The thread count a record was run with (0: each framework's default)."""
    return record.get("threads", settings.get("threads", 1))


def headline_threads(data) -> int:
    """0 when the run has default-thread records; else its only count other than 1, or 1."""
    counts = {threads_of(r, data["settings"]) for r in data["records"]}
    others = counts - {1}
    return 0 if 0 in counts or not counts else (min(others) if others else 1)


class Table:
    """One view of the records: ``median[(case, loss, contender)]`` and friends.

    ``median`` is in the view's clock, ``wall`` always the wall clock (the thread-scaling
    comparison needs the same clock in both views), ``threads_used[(case, contender)]`` the
    intra-op threads the framework ran with, ``others`` the share of the CPUs other
    processes took while a figure was timed.
    """

    def __init__(self, data, view=HEADLINE):
        settings, headline = data["settings"], headline_threads(data)
        if view == HEADLINE:
            self.threads, self.clock = headline, settings.get("clock", "cpu")
        else:  # a run of one thread only has no second view
            self.threads, self.clock = (1 if headline != 1 else None), "cpu"
        self.median, self.wall, self.peak, self.inputs, self.others = {}, {}, {}, {}, {}
        self.threads_used, self.errors, self.notes, self.skipped = {}, [], [], {}
        for record in data["records"]:
            self._errors(record)
            if threads_of(record, settings) == self.threads:
                self._add(record)
        self.cases = [c for c in CASE_NAMES if any(k[0] == c for k in self.median)]
        self.contenders = [c for c in CONTENDER_NAMES if any(k[2] == c for k in self.median)]
        self.losses = [l for l in LOSS_NAMES if any(k[1] == l for k in self.median)]

    def _errors(self, record):
        case, contender = record["case"], record["contender"]
        if "skipped" in record:
            self.skipped[contender] = record["skipped"]
        if "failed" in record:
            self.errors.append(f"{case} / {contender}: {record['failed']}")
        for entry in record.get("results", []):
            if "error" in entry:
                self.errors.append(f"{case} / {entry['loss']} / {contender}: {entry['error']}")

    def _add(self, record):
        case, contender = record["case"], record["contender"]
        if "threads_used" in record:
            self.threads_used[(case, contender)] = record["threads_used"]["intra_op"]
        for entry in record.get("results", []):
            key = (case, entry["loss"], contender)
            if f"median_{self.clock}_s" in entry:
                self.median[key] = entry[f"median_{self.clock}_s"]
            if "median_wall_s" in entry:
                self.wall[key] = entry["median_wall_s"]
            if "peak_mb" in entry:
                self.peak[key] = entry["peak_mb"]
            if entry.get("other_cpu_share") is not None:
                self.others[key] = entry["other_cpu_share"]
            self.inputs[key] = entry.get("inputs_mb")
            if "note" in entry:
                self.notes.append(f"{case} / {entry['loss']} / {contender}: {entry['note']}")

    def ratio(self, case, loss, contender, base=BASE, base_loss=None):
        top = self.median.get((case, loss, contender))
        bottom = self.median.get((case, base_loss or loss, base))
        return None if top is None or bottom is None else top / bottom

    def floor_ratio(self, case, loss, contender=BASE):
        return self.ratio(case, loss, contender, base=FLOOR, base_loss=FLOOR)

    def rows(self):
        return [(c, l) for c in self.cases for l in self.losses
                if any((c, l, k) in self.median for k in self.contenders)]

    def torch_threads(self):
        """The intra-op threads torch ran with in this view (``None`` if no torch record says)."""
        counts = {n for (_, contender), n in self.threads_used.items() if contender in TORCH_NAMES}
        return min(counts) if counts else None


#: The contenders timed on torch, whose thread count labels the headline view.
TORCH_NAMES = ("lossfns_torch", "lossfns_compile", "torch_adapter", "monai", "smp", "naive", "floor")


# -- the overhead case ------------------------------------------------------------------------

def overhead_rows(data) -> list[dict]:
    """Per loss of the overhead case: ``{"loss", "lossfns", "monai", "before"}`` entries of
    :mod:`benchmarks.overhead` (``None`` where not measured) and the per-repeat ratios."""
    runs = data.get("overhead", {})
    current, before = runs.get("current", {}), runs.get("before", {})
    rows = []
    for loss, entry in current.get("losses", {}).items():
        ours, monai = entry.get("lossfns"), entry.get("monai")
        # lossfns' and MONAI's blocks alternate, so block i of each saw the same machine.
        pairs = [a / b for a, b in zip(ours["wall_s"], monai["wall_s"])] if ours and monai else []
        rows.append({"loss": loss, "lossfns": ours, "monai": monai, "pair_ratios": pairs,
                     "before": before.get("losses", {}).get(loss, {}).get("lossfns")})
    return rows


def median_ratio(top, bottom, key="median_wall_s"):
    return None if not top or not bottom else top[key] / bottom[key]


def spread(values) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "—"


def middle(values):
    return statistics.median(values) if values else None
