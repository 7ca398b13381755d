"""Framework workers: one process per framework evaluates every backend that needs it.

The frameworks never load in the calling process. The worker of ``torch``, ``jax`` or
``tensorflow`` evaluates the core on that framework, its adapter and Keras with
``KERAS_BACKEND`` set to that framework, so each framework is imported once and the three
workers run side by side. Inputs and results travel as ``.npz`` files; progress comes back
as lines on the worker's standard output.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import threading

import numpy as np

from .evaluators import evaluate_backend
from .inputs import case_for
from .settings import Settings, resolve_losses

_PROGRESS_LINE = "lossfns-progress"


def save_inputs(path, settings: Settings, losses, arrays):
    """Write what a worker needs: the settings, the loss names and the arrays."""
    config = {"losses": losses, "settings": {**dataclasses.asdict(settings), "shape": list(settings.shape)}}
    np.savez(path, config=np.array(json.dumps(config)), **arrays)


def cases_of(entries, settings: Settings, arrays, *, float64=False):
    """``[(loss, y_true, y_pred, options, dtype)]`` of every entry, from the shared arrays."""
    cases = []
    for loss in entries:
        case = case_for(loss, settings)
        y_true, y_pred = arrays[case.target], arrays[case.prediction]
        if float64:
            y_pred = y_pred.astype(np.float64)
            y_true = y_true if np.issubdtype(y_true.dtype, np.integer) else y_true.astype(np.float64)
        cases.append((loss, y_true, y_pred, case.options, "float64" if float64 else settings.dtype))
    return cases


def main(argv=None):
    """Entry point of a framework worker: ``FRAMEWORK BACKENDS INPUT.npz OUTPUT.npz``."""
    framework, backends, input_path, output_path = (argv or sys.argv[1:])[:4]
    if framework == "jax":
        importlib.import_module("jax").config.update("jax_enable_x64", True)
    with np.load(input_path) as data:
        config = json.loads(str(data["config"]))
        arrays = {key: data[key] for key in data.files if key != "config"}
    settings = Settings(**{**config["settings"], "shape": tuple(config["settings"]["shape"])})
    cases = cases_of(resolve_losses(config["losses"]), settings, arrays)

    def on_done(label):
        print(_PROGRESS_LINE, label, flush=True)

    results, meta = {}, {}
    for backend in backends.split(","):
        outcome = evaluate_backend(backend, cases, settings.device, on_done)
        errors = {}
        for loss, result in outcome.pop("results").items():
            if isinstance(result, str):
                errors[loss] = result
            else:
                results[f"{backend}/{loss}/value"] = result[0]
                if result[1] is not None:
                    results[f"{backend}/{loss}/grad"] = result[1]
        meta[backend] = {**outcome, "errors": errors}
    np.savez(output_path, meta=np.array(json.dumps(meta)), **results)


class Worker:
    """A framework worker process; its progress lines are forwarded to a queue."""

    def __init__(self, framework, backends, input_path, directory, events):
        self.framework, self.backends = framework, backends
        self.output_path = os.path.join(directory, f"{framework}-out.npz")
        self.stderr_path = os.path.join(directory, f"{framework}.log")
        env = dict(os.environ, KERAS_BACKEND=framework, TF_CPP_MIN_LOG_LEVEL="3")
        if framework == "jax":
            env["JAX_ENABLE_X64"] = "1"
        command = [sys.executable, "-c", "from lossfns.testing.workers import main; main()",
                   framework, ",".join(backends), input_path, self.output_path]
        self._stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr,
                                        stdin=subprocess.DEVNULL, env=env, text=True)
        self._reader = threading.Thread(target=self._forward, args=(events,), daemon=True)
        self._reader.start()

    def _forward(self, events):
        assert self.process.stdout is not None  # Popen(stdout=PIPE) made it
        for line in self.process.stdout:
            tag, _, label = line.strip().partition(" ")
            if tag == _PROGRESS_LINE:
                events.put(label)
        events.put(None)

    def finish(self, timeout):
        """``(meta, arrays)``, or raise RuntimeError with the worker's last words."""
        try:
            self.process.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.framework} worker timed out") from None
        finally:
            self._reader.join(timeout=5)
            self._stderr.close()
        if self.process.returncode != 0 or not os.path.exists(self.output_path):
            with open(self.stderr_path) as log:
                lines = [line.strip() for line in log if line.strip()]
            last = lines[-1] if lines else "no output"
            raise RuntimeError(f"{self.framework} worker exited with status {self.process.returncode}: {last}")
        with np.load(self.output_path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {key: data[key] for key in data.files if key != "meta"}
        return meta, arrays

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
