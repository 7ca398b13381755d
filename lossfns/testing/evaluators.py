"""One evaluator per backend: the loss's per-sample values and the gradient of their sum.

An evaluator maps ``(loss, y_true, y_pred, options, dtype)`` (NumPy arrays in, NumPy arrays
out) to ``(values, gradient or None)``. A loader builds it for a device (``"cpu"`` or
``"cuda:N"``), returning ``(evaluator, where it runs)``; it raises ``ModuleNotFoundError``
when its framework is missing and :class:`DeviceUnavailable` when the framework cannot reach
the device. Every framework evaluator puts the inputs on the device and checks that the
loss stays there (SPEC §2: the result stays on the inputs' device). The core runs eagerly;
the JAX adapter's value-and-gradient step is jit-compiled as a whole, as in training. The
torch adapter gets channels-first inputs (its ``class_axis=1`` default); the others
channels-last. NumPy and array-api-strict have no autodiff and run on the host only.
"""

from __future__ import annotations

import importlib

import numpy as np

from .report import one_line

#: Top-level modules whose absence means "not installed" rather than "broken".
_OPTIONAL_MODULES = ("torch", "jax", "jaxlib", "tensorflow", "keras", "array_api_strict")


class DeviceUnavailable(Exception):
    """The framework is installed but cannot run on the requested device."""


def _cuda_index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def _host_only(device: str):
    if device != "cpu":
        raise DeviceUnavailable(f"runs on the host only, not on {device}")


# --------------------------------------------------------------------------- host backends


def _numpy_evaluator(device):
    _host_only(device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        return np.asarray(loss.function(y_true, y_pred, **options)), None
    return evaluate, "cpu"


def _array_api_strict_evaluator(device):
    xs = importlib.import_module("array_api_strict")
    _host_only(device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        value = loss.function(xs.asarray(y_true), xs.asarray(y_pred), **options)
        return np.asarray(value), None
    return evaluate, "cpu"


# --------------------------------------------------------------------------- torch


def _torch_device(torch, device):
    if device == "cpu":
        return torch.device("cpu"), "cpu"
    if not torch.cuda.is_available():
        raise DeviceUnavailable("torch sees no CUDA device")
    index = _cuda_index(device)
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"torch sees {torch.cuda.device_count()} CUDA device(s), not {device}")
    return torch.device("cuda", index), f"{device} ({torch.cuda.get_device_name(index)})"


def _torch_value_and_grad(torch, where, loss_of_pred, y_pred):
    pred = torch.tensor(y_pred, device=where, requires_grad=True)
    value = loss_of_pred(pred)
    if value.device != where:
        raise RuntimeError(f"the loss is on {value.device}, its inputs on {where}")
    value.sum().backward()
    return value.detach().cpu().numpy(), pred.grad.cpu().numpy()


def _torch_core_evaluator(device):
    torch = importlib.import_module("torch")
    where, description = _torch_device(torch, device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        target = torch.from_numpy(y_true).to(where)
        return _torch_value_and_grad(torch, where, lambda p: loss.function(target, p, **options), y_pred)
    return evaluate, description


def _torch_adapter_evaluator(device):
    torch = importlib.import_module("torch")
    adapter = importlib.import_module("lossfns.adapters.torch")
    where, description = _torch_device(torch, device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        # Channels first, as the torch adapter expects by default (class_axis=1).
        target = y_true if y_true.ndim < y_pred.ndim else np.moveaxis(y_true, -1, 1)
        target = torch.from_numpy(np.ascontiguousarray(target)).to(where)
        module = getattr(adapter, loss.class_name)(reduction="none", **options)
        value, grad = _torch_value_and_grad(torch, where, lambda p: module(p, target),
                                            np.ascontiguousarray(np.moveaxis(y_pred, -1, 1)))
        return value, np.moveaxis(grad, 1, -1)
    return evaluate, description


# --------------------------------------------------------------------------- jax


def _jax_device(jax, device):
    if device == "cpu":
        return jax.devices("cpu")[0], "cpu"
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        raise DeviceUnavailable("jax sees no GPU (a jaxlib without CUDA?)") from None
    index = _cuda_index(device)
    if index >= len(gpus):
        raise DeviceUnavailable(f"jax sees {len(gpus)} GPU(s), not {device}")
    return gpus[index], f"{device} ({gpus[index].device_kind})"


def _jax_value_and_grad(jax, where, loss_of_pred, y_pred, jit=False):
    def total(pred):
        value = loss_of_pred(pred)
        return jax.numpy.sum(value), value

    value_and_grad = jax.value_and_grad(total, has_aux=True)
    if jit:  # one compilation of the whole step, as in training (and faster than two)
        value_and_grad = jax.jit(value_and_grad)
    with jax.default_device(where):
        (_, value), grad = value_and_grad(jax.device_put(y_pred, where))
    if value.devices() != {where}:
        raise RuntimeError(f"the loss is on {sorted(map(str, value.devices()))}, its inputs on {where}")
    return np.asarray(value), np.asarray(grad)


def _jax_core_evaluator(device):
    jax = importlib.import_module("jax")
    where, description = _jax_device(jax, device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        target = jax.device_put(y_true, where)
        return _jax_value_and_grad(jax, where, lambda p: loss.function(target, p, **options), y_pred)
    return evaluate, description


def _jax_adapter_evaluator(device):
    jax = importlib.import_module("jax")
    adapter = importlib.import_module("lossfns.adapters.jax")
    where, description = _jax_device(jax, device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        function, target = getattr(adapter, loss.name), jax.device_put(y_true, where)
        return _jax_value_and_grad(jax, where, lambda p: function(p, target, **options), y_pred, jit=True)
    return evaluate, description


# --------------------------------------------------------------------------- tensorflow


def _tensorflow_device(tf, device):
    if device == "cpu":
        return "/CPU:0", "cpu"
    gpus = tf.config.list_physical_devices("GPU")
    index = _cuda_index(device)
    if index >= len(gpus):
        raise DeviceUnavailable(f"tensorflow sees {len(gpus)} GPU(s), not {device}")
    return f"/GPU:{index}", f"{device} (tensorflow GPU:{index})"


def _tensorflow_value_and_grad(tf, where, loss_of_pred, y_pred):
    with tf.device(where):
        pred = tf.constant(y_pred)
        with tf.GradientTape() as tape:
            tape.watch(pred)
            value = loss_of_pred(pred)
            total = tf.reduce_sum(value)
        grad = tape.gradient(total, pred)
    if not value.device.upper().endswith(where[1:]):
        raise RuntimeError(f"the loss is on {value.device}, its inputs on {where}")
    return value.numpy(), grad.numpy()


def _tensorflow_core_evaluator(device):
    tf = importlib.import_module("tensorflow")
    where, description = _tensorflow_device(tf, device)

    def evaluate(loss, y_true, y_pred, options, dtype):
        with tf.device(where):
            target = tf.constant(y_true)
        return _tensorflow_value_and_grad(tf, where, lambda p: loss.function(target, p, **options), y_pred)
    return evaluate, description


# --------------------------------------------------------------------------- keras


def _keras_evaluator(framework, device):
    keras = importlib.import_module("keras")
    if keras.backend.backend() != framework:
        raise RuntimeError(f"keras runs on {keras.backend.backend()}, not {framework}")
    adapter = importlib.import_module("lossfns.adapters.keras")
    module = importlib.import_module(framework)
    where, description = {"torch": _torch_device, "jax": _jax_device,
                          "tensorflow": _tensorflow_device}[framework](module, device)
    scope = "cpu" if device == "cpu" else ("cuda:" if framework == "torch" else "gpu:") + str(_cuda_index(device))

    def evaluate(loss, y_true, y_pred, options, dtype):
        instance = getattr(adapter, loss.class_name)(reduction=None, dtype=dtype, **options)
        with keras.device(scope):
            if framework == "tensorflow":
                return _tensorflow_value_and_grad(module, where, lambda p: instance(y_true, p), y_pred)
            if framework == "jax":
                target = module.device_put(y_true, where)
                return _jax_value_and_grad(module, where, lambda p: instance(target, p), y_pred)
            target = module.from_numpy(y_true).to(where)
            return _torch_value_and_grad(module, where, lambda p: instance(target, p), y_pred)
    return evaluate, description


_LOADERS = {
    "numpy": _numpy_evaluator,
    "array-api-strict": _array_api_strict_evaluator,
    "torch": _torch_core_evaluator,
    "torch-adapter": _torch_adapter_evaluator,
    "jax": _jax_core_evaluator,
    "jax-adapter": _jax_adapter_evaluator,
    "tensorflow": _tensorflow_core_evaluator,
    "keras-tensorflow": lambda device: _keras_evaluator("tensorflow", device),
    "keras-jax": lambda device: _keras_evaluator("jax", device),
    "keras-torch": lambda device: _keras_evaluator("torch", device),
}


def load_evaluator(backend: str, device: str = "cpu"):
    """``(evaluator, where, "")`` or ``(None, None, why not)``; raises on a broken install."""
    try:
        evaluator, where = _LOADERS[backend](device)
        return evaluator, where, ""
    except DeviceUnavailable as exc:
        return None, None, str(exc)
    except ModuleNotFoundError as exc:
        # A missing framework or adapter module means "not installed"; anything else
        # (an adapter that fails to import) is a real error and propagates.
        missing = exc.name or ""
        if missing.split(".")[0] in _OPTIONAL_MODULES or missing.startswith("lossfns.adapters"):
            return None, None, f"not installed ({missing})"
        raise


def evaluate_backend(backend, cases, device, on_done):
    """``{"available", "reason", "device", "results": {loss: (value, grad) or error str}}``.

    ``cases`` is a list of ``(loss, y_true, y_pred, options, dtype)``; ``on_done(label)`` is
    called once per loss.
    """
    broken, evaluator, where, reason = "", None, None, ""
    try:
        evaluator, where, reason = load_evaluator(backend, device)
    except Exception as exc:  # a broken adapter fails every cell, with its message
        broken = f"import failed: {one_line(exc, with_type=True)}"
    results = {}
    for loss, y_true, y_pred, options, dtype in cases:
        if broken:
            results[loss.name] = broken
        elif evaluator is not None:
            try:
                results[loss.name] = evaluator(loss, y_true, y_pred, options, dtype)
            except Exception as exc:
                results[loss.name] = one_line(exc, with_type=True)
        on_done(f"{backend} {loss.name}")
    return {"available": evaluator is not None or bool(broken), "reason": reason, "device": where,
            "results": results}
