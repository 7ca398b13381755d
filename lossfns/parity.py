r"""Cross-framework parity check behind ``lossfns parity``.

Every selected loss is evaluated on every installed backend, on the same generated inputs,
and compared with a float64 NumPy reference:

* value: the core on NumPy in float64, fed the inputs *after* rounding to the run's dtype
  (so a float32 run measures the float32 arithmetic, not the rounding of its inputs);
* gradient of :math:`\sum_b \ell_b` w.r.t. ``y_pred``: 7-point central finite differences
  of the same NumPy float64 core on a few random coordinates,

  .. math:: g_i \approx \frac{-f_{-3} + 9 f_{-2} - 45 f_{-1} + 45 f_{1} - 9 f_{2} + f_{3}}{60 h},
     \qquad f_k = f(x + k h e_i),

  with :math:`h = 10^{-2} \min(p, 1 - p)` for probabilities (never reaching the clip range
  at :math:`10^{-7}`) or :math:`10^{-2} \max(1, |x|)` for logits. The reference is
  independent of every autodiff system. Its truncation error is :math:`O(h^6)`, about
  :math:`10^{-12}` relative for the log terms; its round-off grows with the number ``N`` of
  elements per sample, since the derivative of a per-sample mean is :math:`O(1/N)` while the
  rounding of ``f`` is not: about :math:`\epsilon_{64} N / 10^{-2}` relative. Measured
  against float64 autograd it stayed below 1e-10 for ``N = 768`` and 1e-8 for ``N = 98304``.

  A loss is a sum of per-sample terms (``batch=False``), so ``d f / d y_pred[b, ...]`` only
  involves sample ``b``: the perturbed copies of each sample are stacked into one batch and
  the core runs once per loss, not six times per coordinate.

Differences are normwise relative: ``max |x - ref| / max |ref|`` over the per-sample values,
and over the sampled gradient coordinates.

The frameworks never load in the calling process: one worker process per framework
(``torch``, ``jax``, ``tensorflow``) evaluates the core on that framework, its adapter and
Keras with ``KERAS_BACKEND`` set to that framework, so each framework is imported once and
the three workers run side by side. The core runs eagerly on each framework; the JAX
adapter's value-and-gradient step is jit-compiled as a whole, as in training. NumPy and
array-api-strict have no autodiff and report the value only. The torch adapter gets
channels-first inputs (its ``class_axis=1`` default); the others channels-last.

Test hook: ``LOSSFNS_PARITY_PERTURB=<backend>[,<backend>...]`` multiplies those backends'
values by ``1 + 1e-3`` before the comparison, to check that a disagreement is caught.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from . import registry

#: Backends evaluated in the calling process (no autodiff: value only).
LOCAL_BACKENDS = ("numpy", "array-api-strict")
#: Backends evaluated in the worker of each framework.
WORKER_BACKENDS = {
    "torch": ("torch", "torch-adapter", "keras-torch"),
    "jax": ("jax", "jax-adapter", "keras-jax"),
    "tensorflow": ("tensorflow", "keras-tensorflow"),
}
#: Column order of the report.
BACKENDS = ("numpy", "array-api-strict", "torch", "jax", "tensorflow",
            "torch-adapter", "jax-adapter", "keras-tensorflow", "keras-jax", "keras-torch")
BACKEND_GROUPS = {
    "all": BACKENDS,
    "core": ("numpy", "array-api-strict", "torch", "jax", "tensorflow"),
    "adapters": ("torch-adapter", "jax-adapter", "keras-tensorflow", "keras-jax", "keras-torch"),
    "keras": ("keras-tensorflow", "keras-jax", "keras-torch"),
}

#: SPEC §9: values agree with a float64 NumPy reference to these relative tolerances.
VALUE_TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
#: Gradients against finite differences (raised for large samples, see
#: :func:`gradient_tolerance`). float64: the reference is good to ~1e-10 at the default
#: shape, so 1e-7 is a check of the backend, while a wrong derivative is off at O(1).
#: float32: measured differences stay below 1e-6 (one rounding per operation, amplified a
#: little by the Tversky ratios); 1e-4 is ten times the value tolerance, as the gradient
#: goes through one more division and power than the value.
GRADIENT_TOLERANCE = {"float64": 1e-7, "float32": 1e-4}
#: Relative finite-difference step.
FD_STEP = 1e-2

PERTURB_ENV = "LOSSFNS_PARITY_PERTURB"
PERTURB_FACTOR = 1.0 + 1e-3
_PROGRESS_LINE = "lossfns-progress"
# Perturbed copies held in memory at once by the finite-difference reference.
_FD_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Settings:
    """What to generate: ``shape`` is ``(batch, *spatial)``; the class axis is last."""

    shape: tuple = (2, 16, 16)
    classes: int = 3
    sparse: bool = False
    from_logits: object = False  # False, True, "softmax" or "sigmoid"
    dtype: str = "float64"
    seed: int = 0
    fd_points: int = 32

    @property
    def sample_size(self) -> int:
        """Elements of ``y_pred`` per sample (spatial elements times classes)."""
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.classes

    @property
    def options(self) -> dict:
        return {"from_logits": self.from_logits} if self.from_logits is not False else {}


@dataclass
class Cell:
    """One loss on one backend."""

    status: str  # "pass", "fail", "error", "n/a" (backend not installed) or "skip"
    value_diff: float | None = None
    grad_diff: float | None = None
    message: str = ""


@dataclass
class Report:
    settings: Settings
    losses: list
    backends: list
    availability: dict  # backend -> "" when available, else why not
    cells: dict = field(default_factory=dict)  # (loss, backend) -> Cell
    skipped: dict = field(default_factory=dict)  # loss -> why the reference rejected it
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(c.status in ("fail", "error") for c in self.cells.values())

    def to_json(self) -> dict:
        s = self.settings
        return {
            "settings": {"shape": list(s.shape), "classes": s.classes, "sparse": s.sparse,
                         "from_logits": s.from_logits, "dtype": s.dtype, "seed": s.seed,
                         "fd_points": s.fd_points},
            "tolerances": {"value": VALUE_TOLERANCE[s.dtype],
                           "gradient": gradient_tolerance(s.dtype, s.sample_size)},
            "backends": {b: {"available": not self.availability[b], "reason": self.availability[b]}
                         for b in self.backends},
            "results": {loss: {b: vars(self.cells[loss, b]) for b in self.backends} for loss in self.losses},
            "skipped": self.skipped,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- inputs


def _softmax(x):
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def make_inputs(settings: Settings):
    """``(y_true, y_pred)`` as NumPy arrays; ``y_pred`` already in the run's dtype.

    Logits are standard normal; probabilities are their softmax (sigmoid for one class).
    Labels are uniform over the classes (0/1 for one class), one-hot unless sparse.
    """
    rng = np.random.default_rng(settings.seed)
    shape = tuple(settings.shape) + (settings.classes,)
    logits = rng.normal(size=shape)
    if settings.from_logits is not False:
        y_pred = logits
    elif settings.classes == 1:
        y_pred = 1.0 / (1.0 + np.exp(-logits))
    else:
        y_pred = _softmax(logits)
    labels = rng.integers(0, max(settings.classes, 2), size=tuple(settings.shape))
    if settings.sparse:
        y_true = labels.astype(np.int64)
    elif settings.classes == 1:
        y_true = labels[..., None].astype(settings.dtype)
    else:
        y_true = np.eye(settings.classes, dtype=settings.dtype)[labels]
    return y_true, y_pred.astype(settings.dtype)


def gradient_coordinates(settings: Settings, shape):
    """Indices (a tuple of index arrays) of the coordinates checked by finite differences."""
    size = int(np.prod(shape))
    rng = np.random.default_rng(settings.seed + 1)
    count = min(settings.fd_points, size)
    flat = np.sort(rng.choice(size, count, replace=False)) if count < size else np.arange(size)
    return np.unravel_index(flat, shape)


def gradient_tolerance(dtype: str, sample_size: int) -> float:
    """:data:`GRADIENT_TOLERANCE`, or the reference's round-off bound if that is larger.

    ``100 ε₆₄ N / FD_STEP`` for ``N`` elements per sample: 2e-9 at the default shape, 2e-6
    for a 92³ volume with 3 classes.
    """
    noise = 100.0 * np.finfo(np.float64).eps * sample_size / FD_STEP
    return max(GRADIENT_TOLERANCE[dtype], float(noise))


_FD_OFFSETS = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
_FD_WEIGHTS = np.array([-1.0, 9.0, -45.0, 45.0, -9.0, 1.0]) / 60.0


def finite_difference_gradient(loss, y_true, y_pred, coords, settings: Settings):
    """7-point central differences of ``Σ_b loss_b`` at ``coords`` (NumPy, float64)."""
    y_pred = y_pred.astype(np.float64)
    x = y_pred[coords]
    if settings.from_logits is not False:
        steps = FD_STEP * np.maximum(1.0, np.abs(x))
    else:
        steps = FD_STEP * np.minimum(x, 1.0 - x)
    n = len(_FD_OFFSETS)
    per_chunk = max(1, _FD_CHUNK_ELEMENTS // (n * y_pred[0].size))
    grads = []
    for start in range(0, len(x), per_chunk):
        part = slice(start, start + per_chunk)
        samples = coords[0][part]
        rows = np.arange(n * len(samples))
        point = rows // n  # which coordinate a row perturbs
        pred = np.repeat(y_pred[samples], n, axis=0)
        true = np.repeat(y_true[samples], n, axis=0)
        where = (rows,) + tuple(c[part][point] for c in coords[1:])
        pred[where] = x[part][point] + _FD_OFFSETS[rows % n] * steps[part][point]
        f = np.asarray(loss.function(true, pred, **settings.options)).reshape(len(samples), n)
        grads.append(f @ _FD_WEIGHTS / steps[part])
    return np.concatenate(grads)


def relative_difference(actual, expected) -> float:
    """``max |actual - expected| / max |expected|`` (inf on a shape mismatch or NaN)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)):
        return float("inf")
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(actual - expected), initial=0.0) / scale)


# --------------------------------------------------------------------------- evaluators
class Loss(NamedTuple):
    """A loss as asked for: its name or alias, core function and adapter class name."""

    name: str
    function: Callable
    class_name: str


def resolve_losses(names=None) -> list:
    """:class:`Loss` entries for names or aliases (every registered loss by default)."""
    if not names:
        return [Loss(s.name, s.function, s.class_name) for s in registry.LOSSES]
    entries = []
    for name in dict.fromkeys(names):
        found = registry.get(name)
        entries.append(Loss(name, found.function, registry.ALIAS_CLASS_NAMES.get(name, found.class_name)))
    return entries


# Each evaluator maps (loss, y_true, y_pred, options, dtype) to (per-sample values, gradient
# of their sum w.r.t. y_pred, or None). A loader returns the evaluator or raises ImportError.


def _numpy_evaluator():
    def evaluate(loss, y_true, y_pred, options, dtype):
        return np.asarray(loss.function(y_true, y_pred, **options)), None
    return evaluate


def _array_api_strict_evaluator():
    xs = importlib.import_module("array_api_strict")

    def evaluate(loss, y_true, y_pred, options, dtype):
        value = loss.function(xs.asarray(y_true), xs.asarray(y_pred), **options)
        return np.asarray(value), None
    return evaluate


def _torch_core_evaluator():
    torch = importlib.import_module("torch")

    def evaluate(loss, y_true, y_pred, options, dtype):
        pred = torch.tensor(y_pred, requires_grad=True)
        value = loss.function(torch.from_numpy(y_true), pred, **options)
        value.sum().backward()
        return value.detach().cpu().numpy(), pred.grad.cpu().numpy()
    return evaluate


def _torch_adapter_evaluator():
    torch = importlib.import_module("torch")
    adapter = importlib.import_module("lossfns.adapters.torch")

    def evaluate(loss, y_true, y_pred, options, dtype):
        # Channels first, as the torch adapter expects by default (class_axis=1).
        pred = torch.tensor(np.moveaxis(y_pred, -1, 1), requires_grad=True)
        target = y_true if y_true.ndim < y_pred.ndim else np.moveaxis(y_true, -1, 1)
        module = getattr(adapter, loss.class_name)(reduction="none", **options)
        value = module(pred, torch.from_numpy(np.ascontiguousarray(target)))
        value.sum().backward()
        return value.detach().cpu().numpy(), np.moveaxis(pred.grad.cpu().numpy(), 1, -1)
    return evaluate


def _jax_value_and_grad(loss_of_pred, y_pred, jit=False):
    jax = importlib.import_module("jax")

    def total(pred):
        value = loss_of_pred(pred)
        return jax.numpy.sum(value), value

    value_and_grad = jax.value_and_grad(total, has_aux=True)
    if jit:  # one compilation of the whole step, as in training (and faster than two)
        value_and_grad = jax.jit(value_and_grad)
    (_, value), grad = value_and_grad(jax.numpy.asarray(y_pred))
    return np.asarray(value), np.asarray(grad)


def _jax_core_evaluator():
    jnp = importlib.import_module("jax.numpy")

    def evaluate(loss, y_true, y_pred, options, dtype):
        target = jnp.asarray(y_true)
        return _jax_value_and_grad(lambda p: loss.function(target, p, **options), y_pred)
    return evaluate


def _jax_adapter_evaluator():
    jnp = importlib.import_module("jax.numpy")
    adapter = importlib.import_module("lossfns.adapters.jax")

    def evaluate(loss, y_true, y_pred, options, dtype):
        function, target = getattr(adapter, loss.name), jnp.asarray(y_true)
        return _jax_value_and_grad(lambda p: function(p, target, **options), y_pred, jit=True)
    return evaluate


def _tensorflow_value_and_grad(loss_of_pred, y_pred):
    tf = importlib.import_module("tensorflow")
    pred = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(pred)
        value = loss_of_pred(pred)
        total = tf.reduce_sum(value)
    return value.numpy(), tape.gradient(total, pred).numpy()


def _tensorflow_core_evaluator():
    tf = importlib.import_module("tensorflow")

    def evaluate(loss, y_true, y_pred, options, dtype):
        target = tf.constant(y_true)
        return _tensorflow_value_and_grad(lambda p: loss.function(target, p, **options), y_pred)
    return evaluate


def _keras_evaluator(framework):
    keras = importlib.import_module("keras")
    if keras.backend.backend() != framework:
        raise RuntimeError(f"keras runs on {keras.backend.backend()}, not {framework}")
    adapter = importlib.import_module("lossfns.adapters.keras")

    def evaluate(loss, y_true, y_pred, options, dtype):
        instance = getattr(adapter, loss.class_name)(reduction=None, dtype=dtype, **options)
        if framework == "tensorflow":
            return _tensorflow_value_and_grad(lambda p: instance(y_true, p), y_pred)
        if framework == "jax":
            return _jax_value_and_grad(lambda p: instance(y_true, p), y_pred)
        torch = importlib.import_module("torch")
        pred = torch.tensor(y_pred, requires_grad=True)
        value = instance(torch.from_numpy(y_true), pred)
        value.sum().backward()
        return value.detach().cpu().numpy(), pred.grad.cpu().numpy()
    return evaluate


_LOADERS = {
    "numpy": _numpy_evaluator,
    "array-api-strict": _array_api_strict_evaluator,
    "torch": _torch_core_evaluator,
    "torch-adapter": _torch_adapter_evaluator,
    "jax": _jax_core_evaluator,
    "jax-adapter": _jax_adapter_evaluator,
    "tensorflow": _tensorflow_core_evaluator,
    "keras-tensorflow": lambda: _keras_evaluator("tensorflow"),
    "keras-jax": lambda: _keras_evaluator("jax"),
    "keras-torch": lambda: _keras_evaluator("torch"),
}


def load_evaluator(backend):
    """``(evaluator, "")``, ``(None, why not installed)`` or raise on a broken install."""
    try:
        return _LOADERS[backend](), ""
    except ModuleNotFoundError as exc:
        # A missing framework or adapter module means "not installed"; anything else
        # (an adapter that fails to import) is a real error and propagates.
        missing = exc.name or ""
        if missing.split(".")[0] in ("torch", "jax", "jaxlib", "tensorflow", "keras", "array_api_strict") \
                or missing.startswith("lossfns.adapters"):
            return None, f"not installed ({missing})"
        raise


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def evaluate_backend(backend, entries, y_true, y_pred, options, dtype, on_done):
    """``{"available": bool, "reason": str, "results": {loss: (value, grad) or error str}}``.

    ``on_done(label)`` is called once per loss.
    """
    broken = ""
    try:
        evaluator, reason = load_evaluator(backend)
    except Exception as exc:  # a broken adapter fails every cell, with its message
        evaluator, reason, broken = None, "", f"import failed: {_one_line(exc)}"
    results = {}
    for loss in entries:
        if broken:
            results[loss.name] = broken
        elif evaluator is not None:
            try:
                results[loss.name] = evaluator(loss, y_true, y_pred, options, dtype)
            except Exception as exc:
                results[loss.name] = _one_line(exc)
        on_done(f"{backend} {loss.name}")
    return {"available": evaluator is not None or bool(broken), "reason": reason, "results": results}


# --------------------------------------------------------------------------- workers


def worker_main(argv=None):
    """Entry point of a framework worker: ``FRAMEWORK BACKENDS INPUT.npz OUTPUT.npz``."""
    framework, backends, input_path, output_path = (argv or sys.argv[1:])[:4]
    if framework == "jax":
        importlib.import_module("jax").config.update("jax_enable_x64", True)
    with np.load(input_path) as data:
        y_true, y_pred = data["y_true"], data["y_pred"]
        config = json.loads(str(data["config"]))
    entries = resolve_losses(config["losses"])

    def on_done(label):
        print(_PROGRESS_LINE, label, flush=True)

    arrays, meta = {}, {}
    for backend in backends.split(","):
        outcome = evaluate_backend(backend, entries, y_true, y_pred, config["options"], config["dtype"], on_done)
        errors = {}
        for loss, result in outcome.pop("results").items():
            if isinstance(result, str):
                errors[loss] = result
            else:
                arrays[f"{backend}/{loss}/value"] = result[0]
                if result[1] is not None:
                    arrays[f"{backend}/{loss}/grad"] = result[1]
        meta[backend] = {**outcome, "errors": errors}
    np.savez(output_path, meta=np.array(json.dumps(meta)), **arrays)


class _Worker:
    """A framework worker process; its progress lines are forwarded to a queue."""

    def __init__(self, framework, backends, input_path, directory, events):
        self.framework, self.backends = framework, backends
        self.output_path = os.path.join(directory, f"{framework}-out.npz")
        self.stderr_path = os.path.join(directory, f"{framework}.log")
        env = dict(os.environ, KERAS_BACKEND=framework, TF_CPP_MIN_LOG_LEVEL="3")
        if framework == "jax":
            env["JAX_ENABLE_X64"] = "1"
        command = [sys.executable, "-c", "from lossfns.parity import worker_main; worker_main()",
                   framework, ",".join(backends), input_path, self.output_path]
        self._stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr,
                                        stdin=subprocess.DEVNULL, env=env, text=True)
        self._reader = threading.Thread(target=self._forward, args=(events,), daemon=True)
        self._reader.start()

    def _forward(self, events):
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
            self.process.kill()
            self.process.wait()
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


# --------------------------------------------------------------------------- the check


def resolve_backends(text: str | None) -> list:
    """Backends from a comma list of names and groups (``core``, ``adapters``, ``keras``, ``all``)."""
    if not text:
        return list(BACKENDS)
    chosen = set()
    for item in (t.strip() for t in text.split(",")):
        if item in BACKEND_GROUPS:
            chosen.update(BACKEND_GROUPS[item])
        elif item in BACKENDS:
            chosen.add(item)
        else:
            raise ValueError(f"unknown backend {item!r}; known: {', '.join(BACKENDS + tuple(BACKEND_GROUPS))}")
    return [b for b in BACKENDS if b in chosen]


def perturbed_backends() -> set:
    """Backends named in :data:`PERTURB_ENV` (a test hook)."""
    names = {n.strip() for n in os.environ.get(PERTURB_ENV, "").split(",") if n.strip()}
    unknown = names - set(BACKENDS)
    if unknown:
        raise ValueError(f"{PERTURB_ENV} names unknown backend(s): {', '.join(sorted(unknown))}")
    return names


def _judge(value, grad, reference_value, reference_grad, coords, settings) -> Cell:
    value_diff = relative_difference(value, reference_value)
    grad_diff = None if grad is None else relative_difference(np.asarray(grad)[coords], reference_grad)
    ok = value_diff <= VALUE_TOLERANCE[settings.dtype] and (
        grad_diff is None or grad_diff <= gradient_tolerance(settings.dtype, settings.sample_size))
    bad = [what for what, diff in (("value", value_diff), ("gradient", grad_diff)) if diff == float("inf")]
    if bad:  # JSON has no infinity: such a difference is reported as null with a message
        message = f"{' and '.join(bad)} not finite or of the wrong shape"
        value_diff, grad_diff = (None if d == float("inf") else d for d in (value_diff, grad_diff))
        return Cell("fail", value_diff, grad_diff, message)
    return Cell("pass" if ok else "fail", value_diff, grad_diff)


def run(settings: Settings, losses=None, backends=None, *, progress=None, timeout=600.0) -> Report:
    """Evaluate ``losses`` (names; default all) on ``backends`` and compare with the reference.

    ``progress(done, total, label)`` is called as cells complete.
    """
    entries = resolve_losses(losses)
    backends = list(backends) if backends else list(BACKENDS)
    perturb = perturbed_backends()
    start = time.perf_counter()
    y_true, y_pred = make_inputs(settings)
    total, done = len(entries) * len(backends), 0

    def advance(label):
        nonlocal done
        done += 1
        if progress:
            progress(done, total, label)

    report = Report(settings, [s.name for s in entries], backends, {b: "" for b in backends})
    events: queue.Queue = queue.Queue()
    workers = []
    with tempfile.TemporaryDirectory(prefix="lossfns-parity-") as directory:
        input_path = os.path.join(directory, "inputs.npz")
        config = {"losses": report.losses, "options": settings.options, "dtype": settings.dtype}
        np.savez(input_path, y_true=y_true, y_pred=y_pred, config=np.array(json.dumps(config)))
        try:
            for framework, members in WORKER_BACKENDS.items():
                wanted = [b for b in members if b in backends]
                if not wanted:
                    continue
                if importlib.util.find_spec(framework) is None:
                    for b in wanted:
                        report.availability[b] = f"not installed ({framework})"
                        for _ in entries:
                            advance(b)
                    continue
                workers.append(_Worker(framework, wanted, input_path, directory, events))

            # The reference and the in-process backends run while the workers import.
            outcomes = {}
            reference = _reference(entries, y_true, y_pred, settings, report)
            for backend in (b for b in LOCAL_BACKENDS if b in backends):
                outcomes[backend] = evaluate_backend(
                    backend, entries, y_true, y_pred, settings.options, settings.dtype, advance)
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
            for worker in workers:
                outcomes.update(_collect(worker, entries, deadline - time.monotonic()))
        finally:
            for worker in workers:
                worker.kill()

    for backend in backends:
        outcome = outcomes.get(backend) or {"available": False, "reason": report.availability[backend]}
        report.availability[backend] = outcome["reason"] if not outcome["available"] else ""
        for loss in entries:
            report.cells[loss.name, backend] = _cell(loss.name, backend, outcome, reference, settings, perturb)
    while done < total:  # cells of unavailable backends are counted once each
        advance("")
    report.seconds = time.perf_counter() - start
    return report


def _reference(entries, y_true, y_pred, settings, report):
    y_pred64 = y_pred.astype(np.float64)
    y_true64 = y_true if settings.sparse else y_true.astype(np.float64)
    coords = gradient_coordinates(settings, y_pred.shape)
    reference = {}
    for loss in entries:
        try:
            value = np.asarray(loss.function(y_true64, y_pred64, **settings.options))
            grad = finite_difference_gradient(loss, y_true64, y_pred64, coords, settings)
        except (ValueError, TypeError) as exc:
            report.skipped[loss.name] = _one_line(exc)
            continue
        reference[loss.name] = (value, grad, coords)
    return reference


def _collect(worker, entries, timeout):
    try:
        meta, arrays = worker.finish(timeout)
    except RuntimeError as exc:
        return {b: {"available": True, "reason": "", "results": {s.name: str(exc) for s in entries}}
                for b in worker.backends}
    outcomes = {}
    for backend, info in meta.items():
        results = dict(info["errors"])
        for loss in entries:
            key = f"{backend}/{loss.name}"
            if f"{key}/value" in arrays:
                results[loss.name] = (arrays[f"{key}/value"], arrays.get(f"{key}/grad"))
        outcomes[backend] = {"available": info["available"], "reason": info["reason"], "results": results}
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
    reference_value, reference_grad, coords = reference[loss]
    return _judge(value, grad, reference_value, reference_grad, coords, settings)
