"""The ``lossfns`` command: list the losses, check cross-framework parity, evaluate arrays.

``lossfns list`` prints the registry, ``lossfns parity`` compares every backend with a float64
NumPy reference (see :mod:`lossfns.parity`), ``lossfns eval`` computes losses for arrays on
disk with the NumPy core. Exit status: 0 success, 1 a parity failure, 2 bad arguments or
unreadable input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from . import parity, registry


class CLIError(Exception):
    """A user error: reported as one line on stderr with exit status 2."""


# --------------------------------------------------------------------------- output helpers


def format_table(headers, rows) -> str:
    """Left-aligned columns separated by two spaces, with a dashed rule under the header."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
             for line in [headers, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


class ProgressBar:
    """``[#####.....] 12/40 torch`` redrawn in place on a stream (stderr)."""

    def __init__(self, stream, enabled: bool, width: int = 30):
        self.stream, self.enabled, self.width = stream, enabled, width
        self._last = 0

    def __call__(self, done: int, total: int, label: str = ""):
        if not self.enabled:
            return
        filled = self.width * done // max(total, 1)
        text = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {label}"
        self.stream.write(text.ljust(self._last))
        self.stream.flush()
        self._last = len(text)

    def close(self):
        if self.enabled and self._last:
            self.stream.write("\r" + " " * self._last + "\r")
            self.stream.flush()


def _number(x) -> str:
    if x is None:
        return "—"
    if x == 0:
        return "0"
    return "inf" if math.isinf(x) else f"{x:.0e}"


def cell_text(cell: parity.Cell) -> str:
    """``ok 2e-16 4e-11``: status, value and gradient differences (``—``: no gradient)."""
    if cell.status in ("pass", "fail"):
        word = "ok" if cell.status == "pass" else "FAIL"
        return f"{word} {_number(cell.value_diff)} {_number(cell.grad_diff)}"
    return cell.status


# --------------------------------------------------------------------------- argument types


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 2,16,16, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return shape


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_FROM_LOGITS = {"true": True, "softmax": "softmax", "sigmoid": "sigmoid"}


def _from_logits(text: str):
    try:
        return _FROM_LOGITS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true, softmax or sigmoid, got {text!r}") from None


def _loss_names(text: str | None) -> list | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        try:
            registry.get(name)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    return names


def _add_from_logits(parser):
    parser.add_argument(
        "--from-logits", nargs="?", const=True, default=False, type=_from_logits,
        metavar="{true,softmax,sigmoid}",
        help="y_pred holds logits; bare flag = true (softmax over several classes, sigmoid for one)")


# --------------------------------------------------------------------------- list


def _list_rows():
    for spec in registry.LOSSES:
        names = (spec.name,) + spec.aliases
        for name, class_name in zip(names, registry.class_names(spec)):
            yield {
                "name": name,
                "alias_of": None if name == spec.name else spec.name,
                "family": spec.family,
                "hyperparameters": spec.defaults,
                "options": spec.options,
                "keras": class_name,
                "torch": class_name,
                "jax": name,
            }


def command_list(args) -> int:
    rows = list(_list_rows())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = []
    for row in rows:
        name = row["name"] + (f" (alias of {row['alias_of']})" if row["alias_of"] else "")
        hyper = ", ".join(f"{k}={v!r}" for k, v in row["hyperparameters"].items()) or "—"
        table.append([name, row["family"], hyper, row["keras"], row["torch"], row["jax"]])
    print(format_table(["loss", "family", "hyperparameters (defaults)", "Keras class", "torch class",
                        "JAX function"], table))
    return 0


# --------------------------------------------------------------------------- parity


def command_parity(args) -> int:
    losses = _loss_names(args.losses)
    try:
        backends = parity.resolve_backends(args.backends)
        parity.perturbed_backends()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    settings = parity.Settings(shape=args.shape, classes=args.classes, sparse=args.sparse,
                               from_logits=args.from_logits, dtype=args.dtype, seed=args.seed,
                               fd_points=args.fd_points)
    handle = None
    if args.json and args.json != "-":
        try:  # opened first, so that an unwritable path fails before the run
            handle = open(args.json, "w")
        except OSError as exc:
            raise CLIError(f"cannot write --json {args.json}: {exc.strerror or exc}") from None
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar(sys.stderr, show)
    try:
        report = parity.run(settings, losses, backends, progress=bar, timeout=args.timeout)
        if handle:
            json.dump(report.to_json(), handle, indent=2)
    finally:
        bar.close()
        if handle:
            handle.close()
    if args.json == "-":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(parity_text(report))
    return 0 if report.passed else 1


def parity_text(report: parity.Report) -> str:
    """The parity table with its legend, notes and a summary line."""
    s = report.settings
    rows = [[loss] + [cell_text(report.cells[loss, b]) for b in report.backends] for loss in report.losses]
    lines = [format_table(["loss"] + report.backends, rows), ""]
    logits = "" if s.from_logits is False else f", from_logits={s.from_logits}"
    lines.append(f"inputs: shape {','.join(map(str, s.shape))} x {s.classes} classes, "
                 f"{'sparse' if s.sparse else 'one-hot'} labels{logits}, {s.dtype}, seed {s.seed}")
    lines.append(
        "cells: status, value difference, gradient difference; normwise relative to the float64 "
        f"NumPy core (value) and 7-point finite differences at {s.fd_points} coordinates (gradient); "
        f"tolerances value {parity.VALUE_TOLERANCE[s.dtype]:g}, "
        f"gradient {parity.gradient_tolerance(s.dtype, s.sample_size):g}")
    for backend in report.backends:
        if report.availability[backend]:
            lines.append(f"n/a    {backend}: {report.availability[backend]}")
    for loss, why in report.skipped.items():
        lines.append(f"skip   {loss}: {why}")
    for (loss, backend), cell in report.cells.items():
        if cell.status in ("error", "fail") and cell.message:
            lines.append(f"{cell.status:<5}  {loss} on {backend}: {cell.message}")
    counts = {k: sum(c.status == k for c in report.cells.values()) for k in ("pass", "fail", "error", "n/a", "skip")}
    lines.append(f"parity: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, "
                 f"{counts['n/a']} n/a, {counts['skip']} skipped in {report.seconds:.1f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- eval


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_nifti(path):
    try:
        import nibabel
    except ImportError:
        raise CLIError("reading NIfTI files needs nibabel: pip install nibabel (or lossfns[nifti])") from None
    # dataobj keeps the on-disk dtype (integer label maps stay integers) unless the header scales.
    return np.asanyarray(nibabel.load(path).dataobj)


def load_array(path: str, key: str | None, option: str):
    """``(array, is_nifti)`` from ``.npy``, ``.npz`` (first array or ``key``), ``.nii``/``.nii.gz``."""
    if not os.path.exists(path):
        raise CLIError(f"{option} file not found: {path}")
    if not os.path.isfile(path):
        raise CLIError(f"{option} is not a file: {path}")
    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            return np.load(path, allow_pickle=False), False
        if lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                if not archive.files:
                    raise CLIError(f"{option} {path} holds no arrays")
                if key is not None and key not in archive.files:
                    raise CLIError(f"{option} {path} has no array {key!r}; it has {', '.join(archive.files)}")
                return archive[key if key is not None else archive.files[0]], False
        if lower.endswith((".nii", ".nii.gz")):
            return _load_nifti(path), True
    except CLIError:
        raise
    except Exception as exc:  # numpy and nibabel raise many types for a corrupt file
        raise CLIError(f"cannot read {option} {path}: {_one_line(exc)}") from None
    raise CLIError(f"cannot read {option} {path}: unknown format (expected .npy, .npz, .nii or .nii.gz)")


def _as_labels(y_true, y_pred, class_axis):
    """Integer labels as int64; a float label map shaped like class indices, as integers.

    Class indices have y_pred's shape without the class axis (or with a size-1 one); NIfTI
    label maps are often stored as floats, so whole-number floats of that shape are converted.
    """
    if np.issubdtype(y_true.dtype, np.integer):
        return y_true.astype(np.int64)
    if not np.issubdtype(y_true.dtype, np.floating) or not -y_pred.ndim <= class_axis < y_pred.ndim:
        return y_true  # the core reports what is wrong
    axis = class_axis % y_pred.ndim
    without_class = y_pred.shape[:axis] + y_pred.shape[axis + 1:]
    unit_class = y_pred.shape[:axis] + (1,) + y_pred.shape[axis + 1:]
    if y_true.shape == y_pred.shape or y_true.shape not in (without_class, unit_class):
        return y_true
    if not np.all(np.isfinite(y_true)) or np.any(y_true != np.round(y_true)):
        raise CLIError(f"y_true of shape {y_true.shape} holds class indices (y_pred has shape "
                       f"{y_pred.shape}) but has values that are not whole numbers")
    return y_true.astype(np.int64)


def command_eval(args) -> int:
    from .inputs import prepare

    names = _loss_names(args.losses)
    y_true, true_nifti = load_array(args.y_true, args.key, "--y-true")
    y_pred, pred_nifti = load_array(args.y_pred, args.key, "--y-pred")
    if args.no_batch or true_nifti:
        y_true = y_true[None]
    if args.no_batch or pred_nifti:
        y_pred = y_pred[None]
    if not np.issubdtype(y_pred.dtype, np.floating):
        raise CLIError(f"y_pred must hold floating-point values, got dtype {y_pred.dtype} from {args.y_pred}")
    if y_pred.ndim < 2:
        raise CLIError(f"y_pred needs a batch and a class axis, got shape {y_pred.shape} (try --no-batch)")
    y_true = _as_labels(y_true, y_pred, args.class_axis)
    options = {"class_axis": args.class_axis}
    if args.from_logits is not False:
        options["from_logits"] = args.from_logits
    if args.ignore_index is not None:
        options["ignore_index"] = args.ignore_index
    try:
        prepare(y_true, y_pred, validate=True, **options)
    except (ValueError, TypeError) as exc:
        raise CLIError(_one_line(exc)) from None

    results, skipped = {}, {}
    for name in names or [spec.name for spec in registry.LOSSES]:
        spec = registry.get(name)
        try:
            values = np.asarray(spec.function(y_true, y_pred, validate=True, **options), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            if names:  # the user asked for this loss: its rejection is the answer
                raise CLIError(f"{name}: {_one_line(exc)}") from None
            skipped[name] = _one_line(exc)
            continue
        values = values.reshape(-1)
        results[name] = {"mean": float(np.mean(values)), "per_sample": [float(x) for x in values]}

    if args.json:
        print(json.dumps({
            "y_true": {"path": args.y_true, "shape": list(y_true.shape), "dtype": str(y_true.dtype)},
            "y_pred": {"path": args.y_pred, "shape": list(y_pred.shape), "dtype": str(y_pred.dtype)},
            "options": options, "losses": results, "skipped": skipped}, indent=2))
        return 0
    shown = 8
    rows = []
    for name, r in results.items():
        samples = " ".join(f"{x:.10g}" for x in r["per_sample"][:shown])
        if len(r["per_sample"]) > shown:
            samples += f" ... ({len(r['per_sample'])} samples; --json lists all)"
        rows.append([name, f"{r['mean']:.10g}", samples])
    print(f"y_true {tuple(y_true.shape)} {y_true.dtype}, y_pred {tuple(y_pred.shape)} {y_pred.dtype}")
    print(format_table(["loss", "mean", "per-sample"], rows))
    for name, why in skipped.items():
        print(f"skip  {name}: {why}")
    return 0


# --------------------------------------------------------------------------- parser


_EVAL_EPILOG = """\
Arrays: .npy, .npz (the first array, or --key), NIfTI .nii/.nii.gz (needs nibabel).
Layout: [batch, d1, ..., dk, classes] unless --class-axis says otherwise. A NIfTI image
has no batch axis, so one of size 1 is added to every array read from NIfTI; --no-batch
adds it to the .npy/.npz arrays too (use it for a single unbatched volume). --class-axis
counts axes of y_pred after that batch axis is added (negative values count from the end).
y_true holds dense labels (y_pred's shape) or class indices (the class axis absent or of
size 1); a float label map of that shape whose values are whole numbers, as NIfTI label
files often are, is read as integer labels. Data ranges are checked (validate=True).
Without --losses every loss is computed and those that reject the inputs are listed as
skipped; with --losses such a rejection is an error (exit status 2).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossfns", description="Segmentation losses: list them, check that every framework "
        "gives the same numbers, evaluate arrays on disk.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,parity,eval}")

    p = sub.add_parser("list", help="list every loss, its hyperparameters and adapter names")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=command_list)

    p = sub.add_parser(
        "parity", help="compare every backend with a float64 NumPy reference",
        description="Evaluate losses on every installed backend (value and gradient w.r.t. y_pred) "
                    "and compare with the float64 NumPy core (value) and finite differences "
                    "(gradient). Exit status 1 if any cell fails.",
        epilog=f"Test hook: {parity.PERTURB_ENV}=<backend>[,...] multiplies those backends' values "
               f"by 1+1e-3, so the check must fail.")
    p.add_argument("--losses", help="comma-separated loss names or aliases (default: all)")
    p.add_argument("--backends", help="comma-separated backends or groups: "
                   f"{', '.join(parity.BACKENDS)}; groups core, adapters, keras, all (default: all)")
    p.add_argument("--shape", type=_shape, default=(2, 16, 16),
                   help="batch and spatial sizes, e.g. 2,16,16 (default) or 4 for plain classification")
    p.add_argument("--classes", type=_positive_int, default=3, help="number of classes (default 3)")
    p.add_argument("--sparse", action="store_true", help="integer class labels instead of one-hot")
    _add_from_logits(p)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fd-points", type=_positive_int, default=32,
                   help="coordinates checked by finite differences per loss (default 32)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout only)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the framework workers")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(handler=command_parity)

    p = sub.add_parser("eval", help="compute losses for arrays on disk (NumPy core)",
                       description="Compute losses with the NumPy core for arrays on disk: "
                                   "per-sample values and their mean.",
                       epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--y-true", required=True, metavar="FILE", help="labels (.npy, .npz, .nii, .nii.gz)")
    p.add_argument("--y-pred", required=True, metavar="FILE", help="probabilities or logits")
    p.add_argument("--losses", help="comma-separated loss names or aliases (default: all)")
    p.add_argument("--class-axis", type=int, default=-1, help="class axis of y_pred (default -1)")
    _add_from_logits(p)
    p.add_argument("--ignore-index", type=int, default=None, help="label value to leave out (sparse labels)")
    p.add_argument("--key", help="array name inside .npz files (default: the first array)")
    p.add_argument("--no-batch", action="store_true", help="the arrays have no batch axis: add one of size 1")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=command_eval)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
    except CLIError as exc:
        print(f"lossfns {args.command}: error: {exc}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
