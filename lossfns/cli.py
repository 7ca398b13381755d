"""The ``lossfns`` command: list the losses, check cross-framework parity, evaluate arrays.

``lossfns list`` prints the registry, ``lossfns parity`` compares every backend with a float64
NumPy reference (the harness is :mod:`lossfns.testing`, which only this tool imports),
``lossfns eval`` computes losses for arrays on disk with the NumPy core.

Exit status: 0 success; 1 a check failed (a parity cell failed, or ``eval`` computed a loss
that is not finite); 2 bad arguments, unreadable input, not enough memory for the requested
shape, or no backend on the requested ``--device``; 130 interrupted; 141 the reader of the
output went away (``lossfns list | head``), as a SIGPIPE would. Every error is one line on
stderr, ``lossfns <command>: error: <message>`` (:func:`print_error`), never a traceback.
JSON output is always valid JSON: a non-finite number is written as ``null``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from . import registry, testing

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


class CLIError(Exception):
    """A user error: reported as one line on stderr with exit status 2."""


def print_error(prog: str, message) -> None:
    """The one error format of the tool: ``<prog>: error: <message>`` on one line of stderr."""
    text = " ".join(str(message).split())  # a multi-line message from a library stays one line
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message):
        print_error(self.prog, message)
        raise SystemExit(EXIT_USAGE)


def _dumps(document) -> str:
    return json.dumps(document, indent=2, allow_nan=False)


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


def cell_text(cell: testing.Cell) -> str:
    """``ok 2e-16 4e-11``: status, value and gradient differences (``—``: no gradient)."""
    if cell.status in ("pass", "fail"):
        word = "ok" if cell.status == "pass" else "FAIL"
        return f"{word} {_number(cell.value_diff)} {_number(cell.grad_diff)}"
    return cell.status


# --------------------------------------------------------------------------- argument types


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def _nonnegative_int(text: str) -> int:
    return _integer(text, 0, "a non-negative integer")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 2,16,16, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return shape


def _device(text: str) -> str:
    try:
        return testing.parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
                "required": list(spec.required),
                "options": spec.options,
                "keras": class_name,
                "torch": class_name,
                "jax": name,
            }


def command_list(args) -> int:
    rows = list(_list_rows())
    if args.json:
        print(_dumps(rows))
        return EXIT_OK
    table = []
    for row in rows:
        name = row["name"] + (f" (alias of {row['alias_of']})" if row["alias_of"] else "")
        hyper = ", ".join([*(f"{k} (required)" for k in row["required"]),
                           *(f"{k}={v!r}" for k, v in row["hyperparameters"].items())]) or "—"
        table.append([name, row["family"], hyper, row["keras"], row["torch"], row["jax"]])
    print(format_table(["loss", "family", "hyperparameters (defaults)", "Keras class", "torch class",
                        "JAX function"], table))
    return EXIT_OK


# --------------------------------------------------------------------------- parity


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.3g} GiB"


def _check_memory(settings: testing.Settings, backends):
    """Refuse a shape that cannot fit before anything is allocated."""
    needed, available = testing.memory_estimate(settings, backends), _physical_memory()
    if available is not None and needed > available:
        raise CLIError(f"--shape {','.join(map(str, settings.shape))} with {settings.classes} classes "
                       f"needs about {_gib(needed)}, more than this machine's {_gib(available)}")


def _parity_settings(args) -> testing.Settings:
    try:
        return testing.Settings(shape=args.shape, classes=args.classes, sparse=args.sparse,
                                from_logits=args.from_logits, dtype=args.dtype, seed=args.seed,
                                fd_points=args.fd_points, device=args.device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _open_json(path):
    """The --json file, opened before the run so that an unwritable path fails first."""
    if not path or path == "-":
        return None
    try:
        return open(path, "w")
    except OSError as exc:
        raise CLIError(f"cannot write --json {path}: {exc.strerror or exc}") from None


def _device_missing(report) -> str:
    """Why no backend ran on the requested device ('' when one did)."""
    if report.settings.device == "cpu" or any(not report.availability[b] for b in report.backends):
        return ""
    reasons = dict.fromkeys(report.availability[b] for b in report.backends
                            if b not in testing.settings.LOCAL_BACKENDS)
    why = "; ".join(reasons) or "only host backends were selected"
    return f"no selected backend can run on {report.settings.device}: {why}"


def command_parity(args) -> int:
    losses = _loss_names(args.losses)
    try:
        backends = testing.resolve_backends(args.backends)
        testing.perturbed_backends()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    settings = _parity_settings(args)
    _check_memory(settings, backends)
    handle = _open_json(args.json)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar(sys.stderr, show)
    try:
        report = testing.run(settings, losses, backends, progress=bar, timeout=args.timeout)
        if handle:
            handle.write(_dumps(report.to_json()))
    except MemoryError:
        raise CLIError(f"out of memory for --shape {','.join(map(str, settings.shape))} "
                       f"with {settings.classes} classes") from None
    finally:
        bar.close()
        if handle:
            handle.close()
    missing = _device_missing(report)
    if missing:
        raise CLIError(missing)
    print(_dumps(report.to_json()) if args.json == "-" else parity_text(report))
    return EXIT_OK if report.passed else EXIT_FAILED


def parity_text(report: testing.Report) -> str:
    """The parity table with its legend, notes and a summary line."""
    s = report.settings
    rows = [[loss] + [cell_text(report.cells[loss, b]) for b in report.backends] for loss in report.losses]
    lines = [format_table(["loss"] + report.backends, rows), ""]
    logits = "" if s.from_logits is False else f", from_logits={s.from_logits}"
    lines.append(f"inputs: shape {','.join(map(str, s.shape))} x {s.classes} classes, "
                 f"{'sparse' if s.sparse else 'one-hot'} labels{logits}, {s.dtype}, seed {s.seed}, "
                 f"device {s.device}")
    lines.append(
        "cells: status, value difference, gradient difference; normwise relative to the float64 "
        f"NumPy core (value) and to finite differences at {s.fd_points} coordinates, with a floor "
        f"(gradient); tolerances value {testing.VALUE_TOLERANCE[s.dtype]:g}, "
        f"gradient {testing.GRADIENT_TOLERANCE[s.dtype]:g}")
    if s.device != "cpu":
        ran = [f"{b} {report.devices[b]}" for b in report.backends if report.devices.get(b)]
        lines.append(f"devices: {', '.join(ran)}")
    for backend in report.backends:
        if report.availability[backend]:
            lines.append(f"n/a    {backend}: {report.availability[backend]}")
    for loss, why in report.skipped.items():
        lines.append(f"skip   {loss}: {why}")
    for (loss, backend), cell in report.cells.items():
        if cell.status in ("error", "fail", "pass") and cell.message:
            word = "note" if cell.status == "pass" else cell.status
            lines.append(f"{word:<5}  {loss} on {backend}: {cell.message}")
    counts = report.counts()
    lines.append(f"parity: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, "
                 f"{counts['n/a']} n/a, {counts['skip']} skipped in {report.seconds:.1f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- eval


def _load_nifti(path):
    try:
        import nibabel
    except ImportError:
        raise CLIError("reading NIfTI files needs nibabel: pip install nibabel (or lossfns[nifti])") from None
    from nibabel.dataobj_images import DataobjImage

    image = nibabel.load(path)
    if not isinstance(image, DataobjImage):  # NIfTI images always are
        raise CLIError(f"{path} holds no voxel data")
    # dataobj keeps the on-disk dtype (integer label maps stay integers) unless the header scales.
    return np.asanyarray(image.dataobj)


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
        raise CLIError(f"cannot read {option} {path}: {testing.one_line(exc)}") from None
    raise CLIError(f"cannot read {option} {path}: unknown format (expected .npy, .npz, .nii or .nii.gz)")


def _as_labels(y_true, y_pred, class_axis):
    """Integer labels as int64; a float label map that holds class indices, as integers.

    Whether ``y_true`` holds class indices is the core's rule,
    :func:`lossfns.inputs.label_layout`. NIfTI label maps are often stored as floats, so
    whole-number floats laid out as class indices are converted. Against one channel such
    floats are the binary target itself and are passed on as they are.
    """
    from .inputs import label_layout

    if np.issubdtype(y_true.dtype, np.integer):
        return y_true.astype(np.int64)
    if not np.issubdtype(y_true.dtype, np.floating) or not -y_pred.ndim <= class_axis < y_pred.ndim:
        return y_true  # the core reports what is wrong
    axis = class_axis % y_pred.ndim
    try:
        layout = label_layout(y_true.shape, y_pred.shape, axis)
    except ValueError:
        return y_true  # a shape mismatch: the core reports it
    if layout != "indices" or y_pred.shape[axis] == 1:
        return y_true
    if not np.all(np.isfinite(y_true)) or np.any(y_true != np.round(y_true)):
        raise CLIError(f"y_true of shape {y_true.shape} holds class indices (y_pred has shape "
                       f"{y_pred.shape}) but has values that are not whole numbers")
    return y_true.astype(np.int64)


def _finite_or_none(x: float):
    return x if math.isfinite(x) else None


def _why_not(spec, from_logits, targets) -> str:
    """Why ``spec`` cannot be computed from what was given ('' when it can).

    These losses would accept the arrays and return a number that means nothing, so the
    core cannot be left to reject them: probabilities read as logits, labels as distances
    or as skeletons. ``targets`` holds what was given beyond the labels: target kinds
    (``distance_maps``, ``skeletons``) and required hyperparameters (``distance_matrix``).
    """
    if spec.logits_only and from_logits is False:
        return "takes logits only: pass --from-logits if --y-pred holds logits (not computed from probabilities)"
    if spec.target_kind == "distance_maps" and "distance_maps" not in targets:
        return ("takes signed distance maps, not labels: give them with --distance-maps FILE "
                "or compute them with --distance-maps-from-labels")
    if spec.target_kind == "skeletons" and "skeletons" not in targets:
        return ("takes the labels' tubed skeletons, not the labels: compute them with "
                "--skeletons-from-labels (needs scikit-image)")
    for name in spec.required:
        if name not in targets:
            option, what = _REQUIRED_OPTIONS[name]
            return f"needs {name}: give it with {option} FILE ({what})"
    return ""


#: The eval option that gives each required hyperparameter of a loss, and what it holds.
_REQUIRED_OPTIONS = {"distance_matrix": ("--distance-matrix", "a C × C array of class distances")}


def _given_targets(args) -> set:
    targets = set()
    if args.distance_maps or args.distance_maps_from_labels:
        targets.add("distance_maps")
    if args.skeletons_from_labels:
        targets.add("skeletons")
    if args.distance_matrix:
        targets.add("distance_matrix")
    return targets


def _refuse_unusable(names, args) -> None:
    """A loss asked for by name that these options cannot compute is an argument error."""
    for name in names or ():
        why = _why_not(registry.get(name), args.from_logits, _given_targets(args))
        if why:
            raise CLIError(f"{name} {why}")


def _evaluate(names, y_true, y_pred, options, targets):
    """``(results, skipped)``: per-sample values and mean of each loss, or why it was skipped.

    ``targets`` maps what was given besides the labels (target kinds, required
    hyperparameters) to its array.
    """
    results, skipped = {}, {}
    for name in names or [spec.name for spec in registry.LOSSES]:
        spec = registry.get(name)
        why = _why_not(spec, options.get("from_logits", False), targets)
        if why:  # only in the default list: a loss named in --losses was refused up front
            skipped[name] = why
            continue
        target = targets.get(spec.target_kind, y_true)
        required = {name: targets[name] for name in spec.required}
        try:
            values = np.asarray(spec.function(target, y_pred, validate=True, **options, **required),
                                dtype=np.float64)
        except (ValueError, TypeError) as exc:
            if names:  # the user asked for this loss: its rejection is the answer
                raise CLIError(f"{name}: {testing.one_line(exc)}") from None
            skipped[name] = testing.one_line(exc)
            continue
        values = values.reshape(-1)
        results[name] = {"mean": float(np.mean(values)), "per_sample": [float(x) for x in values]}
    return results, skipped


def _non_finite(results) -> str:
    """'' or a message naming every loss whose value is not finite, with its first bad sample."""
    bad = []
    for name, r in results.items():
        where = [i for i, x in enumerate(r["per_sample"]) if not math.isfinite(x)]
        if where:
            bad.append(f"{name} is {r['per_sample'][where[0]]} for sample {where[0]}"
                       + (f" (and {len(where) - 1} more)" if len(where) > 1 else ""))
    return ("non-finite loss: " + "; ".join(bad)) if bad else ""


def _read_eval_inputs(args):
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
    if y_pred.shape[0] == 0:
        raise CLIError(f"y_pred holds no samples (shape {y_pred.shape})")
    return _as_labels(y_true, y_pred, args.class_axis), y_pred


def _read_distance_maps(args, y_pred):
    """The --distance-maps array, batched as y_pred is and checked against it."""
    maps, nifti = load_array(args.distance_maps, args.key, "--distance-maps")
    if args.no_batch or nifti:
        maps = maps[None]
    if not np.issubdtype(maps.dtype, np.floating):
        raise CLIError(f"--distance-maps must hold floating-point signed distances, got dtype {maps.dtype} "
                       f"from {args.distance_maps}")
    if maps.shape != y_pred.shape:
        raise CLIError(f"--distance-maps shape {maps.shape} does not match y_pred shape {y_pred.shape} "
                       "(one signed distance map per class)")
    return maps


def _hard_label_indices(y_true, y_pred, axis):
    """Integer class indices without the class axis, or None when y_true is soft or multi-hot.

    One channel is the foreground, so its labels must be 0/1; dense labels of several
    classes must be one-hot, one 1 per element.
    """
    from .inputs import label_layout

    classes = y_pred.shape[axis]
    labels = np.asarray(y_true)
    dense = label_layout(labels.shape, y_pred.shape, axis) == "dense"
    # A size-1 class axis goes: indices against several classes, or the one channel's 0/1 map.
    if labels.ndim == y_pred.ndim and (classes == 1 or not dense):
        labels, dense = np.squeeze(labels, axis=axis), False
    if dense:
        one_hot = np.all((labels == 0) | (labels == 1)) and np.all(np.sum(labels, axis=axis) == 1)
        return np.argmax(labels, axis=axis) if one_hot else None
    if np.issubdtype(labels.dtype, np.integer):
        return labels
    binary = np.all((labels == 0) | (labels == 1))
    return labels.astype(np.int64) if binary else None


def _distance_maps_from_labels(y_true, y_pred, class_axis):
    """Signed distance maps of the labels, one per channel of y_pred (element spacing 1)."""
    from .boundary import signed_distance_maps

    axis = class_axis % y_pred.ndim  # valid: prepare() has checked it
    labels = _hard_label_indices(y_true, y_pred, axis)
    if labels is None:
        raise CLIError("--distance-maps-from-labels needs class indices, one-hot or 0/1 y_true; these labels "
                       "are soft or multi-hot (give the maps with --distance-maps FILE)")
    classes = y_pred.shape[axis]
    try:
        if classes == 1:  # one channel is the foreground: class 1 of the 0/1 labels
            return np.take(signed_distance_maps(labels, 2, class_axis=axis), [1], axis=axis)
        return signed_distance_maps(labels, classes, class_axis=axis)
    except (ImportError, ValueError, TypeError) as exc:  # no SciPy, or no spatial axis
        raise CLIError(f"--distance-maps-from-labels: {testing.one_line(exc)}") from None


def _distance_maps(args, names, y_true, y_pred):
    """The maps from --distance-maps or --distance-maps-from-labels; None when none is given.

    Only when a selected loss takes them: the distance transform of a large volume is slow.
    """
    if not _selected_take(names, "distance_maps"):
        return None
    if args.distance_maps:
        return _read_distance_maps(args, y_pred)
    if args.distance_maps_from_labels:
        return _distance_maps_from_labels(y_true, y_pred, args.class_axis)
    return None


def _selected_take(names, kind: str) -> bool:
    """Whether a loss named in --losses (every loss without it) takes targets of ``kind``."""
    selected = [registry.get(name) for name in names] if names else registry.LOSSES
    return any(spec.target_kind == kind for spec in selected)


def _skeletons_from_labels(args, names, y_true, y_pred):
    """The labels' tubed skeletons (class indices) when asked for and a selected loss takes them."""
    if not args.skeletons_from_labels or not _selected_take(names, "skeletons"):
        return None
    from .skeleton import tubed_skeletons

    labels = _hard_label_indices(y_true, y_pred, args.class_axis % y_pred.ndim)
    if labels is None:
        raise CLIError("--skeletons-from-labels needs class indices, one-hot or 0/1 y_true; these labels "
                       "are soft or multi-hot")
    try:
        return tubed_skeletons(labels)
    except (ImportError, ValueError, TypeError) as exc:  # no scikit-image, or not 2-D/3-D
        raise CLIError(f"--skeletons-from-labels: {testing.one_line(exc)}") from None


def _check_labels(y_true, y_pred, options) -> None:
    """The core's checks of y_true and y_pred, before any loss runs."""
    from .inputs import prepare

    try:
        prepare(y_true, y_pred, validate=True, **options)
    except (ValueError, TypeError) as exc:
        # Negative "labels" are most likely signed distance maps given in the wrong place.
        negative = np.issubdtype(y_true.dtype, np.floating) and bool(np.any(y_true < 0))
        hint = " (signed distance maps go in --distance-maps FILE)" if negative else ""
        raise CLIError(testing.one_line(exc) + hint) from None


def command_eval(args) -> int:
    names = _loss_names(args.losses)
    _refuse_unusable(names, args)  # before reading files that may be large
    y_true, y_pred = _read_eval_inputs(args)
    options = {"class_axis": args.class_axis}
    if args.from_logits is not False:
        options["from_logits"] = args.from_logits
    if args.ignore_index is not None:
        options["ignore_index"] = args.ignore_index
    _check_labels(y_true, y_pred, options)
    maps = _distance_maps(args, names, y_true, y_pred)
    skeletons = _skeletons_from_labels(args, names, y_true, y_pred)
    matrix = load_array(args.distance_matrix, args.key, "--distance-matrix")[0] if args.distance_matrix else None
    targets = {kind: array for kind, array in (("distance_maps", maps), ("skeletons", skeletons),
                                               ("distance_matrix", matrix))
               if array is not None}
    results, skipped = _evaluate(names, y_true, y_pred, options, targets)
    if args.json:
        print(_dumps(_eval_document(args, y_true, y_pred, maps, options, results, skipped)))
    else:
        print(_eval_text(results, skipped, y_true, y_pred, maps))
    problem = _non_finite(results)
    if problem:
        sys.stdout.flush()
        print_error("lossfns eval", problem)
        return EXIT_FAILED
    return EXIT_OK


def _eval_document(args, y_true, y_pred, maps, options, results, skipped) -> dict:
    """The --json output: inputs, options, results (non-finite numbers as null), skips."""
    safe = {name: {"mean": _finite_or_none(r["mean"]), "per_sample": [_finite_or_none(x) for x in r["per_sample"]]}
            for name, r in results.items()}
    document = {
        "y_true": {"path": args.y_true, "shape": list(y_true.shape), "dtype": str(y_true.dtype)},
        "y_pred": {"path": args.y_pred, "shape": list(y_pred.shape), "dtype": str(y_pred.dtype)},
        "distance_maps": None,
        "options": options, "losses": safe, "skipped": skipped}
    if maps is not None:
        document["distance_maps"] = {"path": args.distance_maps, "from_labels": args.distance_maps_from_labels,
                                     "shape": list(maps.shape), "dtype": str(maps.dtype)}
    return document


def _eval_text(results, skipped, y_true, y_pred, maps=None) -> str:
    shown = 8
    rows = []
    for name, r in results.items():
        samples = " ".join(f"{x:.10g}" for x in r["per_sample"][:shown])
        if len(r["per_sample"]) > shown:
            samples += f" ... ({len(r['per_sample'])} samples; --json lists all)"
        rows.append([name, f"{r['mean']:.10g}", samples])
    inputs = f"y_true {tuple(y_true.shape)} {y_true.dtype}, y_pred {tuple(y_pred.shape)} {y_pred.dtype}"
    if maps is not None:
        inputs += f", distance maps {tuple(maps.shape)} {maps.dtype}"
    lines = [inputs, format_table(["loss", "mean", "per-sample"], rows)]
    lines += [f"skip  {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


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
skipped; with --losses such a rejection is an error (exit status 2). A loss that takes
logits only (lovasz_hinge_loss) needs --from-logits, and one that takes signed distance
maps (boundary_loss) needs --distance-maps FILE (y_pred's shape, read like the other
arrays) or --distance-maps-from-labels (computed from hard labels with SciPy, element
spacing 1); generalized_wasserstein_dice_loss needs --distance-matrix FILE (C × C);
without them such a loss is skipped, or refused when --losses names it. A
loss that is not finite is shown (null in --json) and makes the exit status 1.
"""


def _add_parity_parser(sub):
    p = sub.add_parser(
        "parity", help="compare every backend with a float64 NumPy reference",
        description="Evaluate losses on every installed backend (value and gradient w.r.t. y_pred) "
                    "and compare with the float64 NumPy core (value) and finite differences "
                    "(gradient). Exit status 1 if any cell fails, 2 on bad arguments.",
        epilog=f"Test hook: {testing.PERTURB_ENV}=<backend>[,...] multiplies those backends' values "
               f"by 1+1e-3, so the check must fail.")
    p.add_argument("--losses", help="comma-separated loss names or aliases (default: all)")
    p.add_argument("--backends", help="comma-separated backends or groups: "
                   f"{', '.join(testing.BACKENDS)}; groups core, adapters, keras, all (default: all)")
    p.add_argument("--shape", type=_shape, default=(2, 16, 16),
                   help="batch and spatial sizes, e.g. 2,16,16 (default) or 4 for plain classification")
    p.add_argument("--classes", type=_positive_int, default=3, help="number of classes (default 3)")
    p.add_argument("--sparse", action="store_true", help="integer class labels instead of one-hot")
    _add_from_logits(p)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the inputs (default 0)")
    p.add_argument("--fd-points", type=_positive_int, default=32,
                   help="coordinates checked by finite differences per loss (default 32)")
    p.add_argument("--device", type=_device, default="cpu",
                   help="where torch, JAX and TensorFlow (and their adapters and Keras) run: cpu "
                        "(default), cuda or cuda:N; backends without that device are n/a, and "
                        "exit status 2 if none has it")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout only)")
    p.add_argument("--timeout", type=_positive_seconds, default=600.0,
                   help="seconds to wait for the framework workers (default 600)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(handler=command_parity)


def _add_eval_parser(sub):
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
    maps = p.add_mutually_exclusive_group()
    maps.add_argument("--distance-maps", metavar="FILE",
                      help="signed distance maps of y_pred's shape, for the losses that take them (boundary_loss)")
    maps.add_argument("--distance-maps-from-labels", action="store_true",
                      help="compute those maps from y_true with lossfns.signed_distance_maps (needs SciPy)")
    p.add_argument("--skeletons-from-labels", action="store_true",
                   help="compute the tubed skeletons of y_true with lossfns.tubed_skeletons for the losses "
                        "that take them (skeleton_recall_loss; needs scikit-image)")
    p.add_argument("--distance-matrix", metavar="FILE",
                   help="a C × C array of distances between the classes, for the losses that need one "
                        "(generalized_wasserstein_dice_loss)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=command_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lossfns", description="Segmentation losses: list them, check that every framework "
        "gives the same numbers, evaluate arrays on disk.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,parity,eval}")
    p = sub.add_parser("list", help="list every loss, its hyperparameters and adapter names")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=command_list)
    _add_parity_parser(sub)
    _add_eval_parser(sub)
    return parser


def _silence_stdout():
    # The reader has gone; point stdout at /dev/null so that the interpreter's final flush
    # does not raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _run(argv) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line argument error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        status = args.handler(args)
        sys.stdout.flush()
    except CLIError as exc:
        print_error(f"lossfns {args.command}", exc)
        status = EXIT_USAGE
    except MemoryError:
        print_error(f"lossfns {args.command}", "out of memory (try a smaller input)")
        status = EXIT_USAGE
    return status


def main(argv=None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
