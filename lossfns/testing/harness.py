"""The parity run: reference, host backends and framework workers, gathered into a report."""

from __future__ import annotations

import importlib.util
import os
import queue
import tempfile
import time

import numpy as np

from .comparison import judge
from .evaluators import evaluate_backend
from .finite_differences import reference_gradient
from .inputs import case_for, gradient_coordinates, make_arrays
from .report import Cell, Report, one_line
from .settings import (
    BACKENDS,
    GRADIENT_TOLERANCE,
    LOCAL_BACKENDS,
    PERTURB_FACTOR,
    VALUE_TOLERANCE,
    WORKER_BACKENDS,
    Settings,
    perturbed_backends,
    resolve_losses,
)
from .workers import Worker, cases_of, save_inputs


def run(settings: Settings, losses=None, backends=None, *, progress=None, timeout=600.0) -> Report:
    """Evaluate ``losses`` (names; default all) on ``backends`` and compare with the reference.

    ``progress(done, total, label)`` is called as cells complete; ``timeout`` bounds the wait
    for the framework workers, in seconds.
    """
    entries = resolve_losses(losses)
    backends = list(backends) if backends else list(BACKENDS)
    perturb = perturbed_backends()
    start = time.perf_counter()
    arrays = make_arrays(settings, [case_for(loss, settings) for loss in entries])
    total, done = len(entries) * len(backends), 0

    def advance(label):
        nonlocal done
        done += 1
        if progress:
            progress(done, total, label)

    report = Report(settings, [loss.name for loss in entries], backends, {b: "" for b in backends})
    events: queue.Queue = queue.Queue()
    workers: list[Worker] = []
    outcomes = {}
    with tempfile.TemporaryDirectory(prefix="lossfns-parity-") as directory:
        input_path = os.path.join(directory, "inputs.npz")
        save_inputs(input_path, settings, report.losses, arrays)
        try:
            _start_workers(workers, report, input_path, directory, events, advance)
            # The reference and the host backends run while the workers import.
            reference = _reference(entries, settings, arrays, report)
            host_cases = cases_of(entries, settings, arrays)
            for backend in (b for b in LOCAL_BACKENDS if b in backends):
                outcomes[backend] = evaluate_backend(backend, host_cases, settings.device, advance)
            deadline = _wait(workers, events, advance, timeout)
            for worker in workers:
                outcomes.update(_collect(worker, entries, deadline - time.monotonic()))
        finally:
            for worker in workers:
                worker.kill()

    for backend in backends:
        outcome = outcomes.get(backend) or {"available": False, "reason": report.availability[backend]}
        report.availability[backend] = outcome["reason"] if not outcome["available"] else ""
        report.devices[backend] = outcome.get("device")
        for loss in entries:
            report.cells[loss.name, backend] = _cell(loss.name, backend, outcome, reference, settings, perturb)
    while done < total:  # cells of unavailable backends are counted once each
        advance("")
    report.seconds = time.perf_counter() - start
    return report


def _start_workers(workers, report, input_path, directory, events, advance):
    """Append a worker per installed framework that a selected backend needs (the caller
    kills them, also those started before a failure); mark the others n/a."""
    for framework, members in WORKER_BACKENDS.items():
        wanted = [b for b in members if b in report.backends]
        if wanted and importlib.util.find_spec(framework) is None:
            for backend in wanted:
                report.availability[backend] = f"not installed ({framework})"
                for _ in report.losses:
                    advance(backend)
        elif wanted:
            workers.append(Worker(framework, wanted, input_path, directory, events))


def _wait(workers, events, advance, timeout) -> float:
    """Forward the workers' progress until they end or ``timeout`` passes; the deadline."""
    running = len(workers)
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        try:
            label = events.get(timeout=0.2)
        except queue.Empty:
            continue
        if label is None:
            running -= 1
        else:
            advance(label)
    return deadline


def _reference(entries, settings: Settings, arrays, report):
    """``{loss: (values, GradientReference)}``; a loss that rejects the inputs is skipped."""
    coords = gradient_coordinates(settings, tuple(settings.shape) + (settings.classes,))
    reference = {}
    for loss, y_true, y_pred, options, _ in cases_of(entries, settings, arrays, float64=True):
        prediction = case_for(loss, settings).prediction
        try:
            value = np.asarray(loss.function(y_true, y_pred, **options))
            grad = reference_gradient(loss.function, y_true, y_pred, coords, prediction=prediction,
                                      options=options, seed=settings.seed + 2)
        except (ValueError, TypeError) as exc:
            report.skipped[loss.name] = one_line(exc, with_type=True)
            continue
        reference[loss.name] = (value, grad)
    return reference


def _collect(worker, entries, timeout):
    try:
        meta, arrays = worker.finish(timeout)
    except RuntimeError as exc:
        return {b: {"available": True, "reason": "", "device": None,
                    "results": {loss.name: str(exc) for loss in entries}} for b in worker.backends}
    outcomes = {}
    for backend, info in meta.items():
        results = dict(info["errors"])
        for loss in entries:
            key = f"{backend}/{loss.name}"
            if f"{key}/value" in arrays:
                results[loss.name] = (arrays[f"{key}/value"], arrays.get(f"{key}/grad"))
        outcomes[backend] = {**info, "results": results}
    return outcomes


def _cell(loss, backend, outcome, reference, settings, perturb) -> Cell:
    if loss not in reference:
        return Cell("skip", message="the reference rejects these inputs")
    if not outcome["available"]:
        return Cell("n/a", message=outcome["reason"])
    result = outcome["results"].get(loss, "no result")
    if isinstance(result, str):
        return Cell("error", message=result)
    value, grad = result
    if backend in perturb:
        value = np.asarray(value) * PERTURB_FACTOR
    reference_value, reference_grad = reference[loss]
    return judge(value, grad, reference_value, reference_grad,
                 value_tolerance=VALUE_TOLERANCE[settings.dtype],
                 gradient_tolerance=GRADIENT_TOLERANCE[settings.dtype])
