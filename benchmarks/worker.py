"""Measure one contender on one case, in a process of its own.

``python -m benchmarks.worker --case 3d --contender monai --losses dice,tversky --out r.json``

For each loss the worker builds one forward + backward step (gradient with respect to the
prediction), runs it ``warmup`` times (this is where jit/compile happens), then times
``repeats`` runs and keeps every duration, both wall clock (``perf_counter``) and CPU time
of the process (``process_time``, all threads). Only after every loss has been timed does it
measure peak memory, one extra step per loss:

* torch on CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
  minus the allocation before the step.
* TensorFlow (and Keras on it): the allocator's own ``get_memory_info("CPU:0")`` peak after
  ``reset_memory_stats``, minus the allocation before the step. TensorFlow keeps freed
  memory in its allocator, so the resident size would not see the step's temporaries.
* CPU (torch and JAX, which has no CPU statistics): the peak resident set size during the step minus the resident
  size just before it. glibc is first told to serve every allocation of 64 KiB or more
  with its own ``mmap`` (``mallopt(M_MMAP_THRESHOLD)``) so that freed tensors leave the
  process at once and the resident size follows live memory; the kernel's high-water mark
  (``VmHWM``) is reset through ``/proc/self/clear_refs`` before the step. Timing runs
  before this switch, with glibc keeping freed memory for reuse (the parent process sets
  ``MALLOC_*`` variables, see ``benchmarks.__main__``). Where ``clear_refs`` is unavailable
  (not Linux) the lifetime peak ``ru_maxrss`` is used instead, which is exact only for the
  first loss of a process.

The figure is the step's working memory: temporaries, saved activations, gradient and
outputs, not the inputs themselves, whose size is reported separately (``inputs_mb``).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import sys
import time
import traceback

import numpy as np

from . import machine
from .cases import Case, channels_first, get_case, get_loss, make_arrays
from .contenders import CONTENDERS, missing_requirement

MEGABYTE = 1024.0 * 1024.0
FLOOR = "floor"


# -- inputs per framework -----------------------------------------------------------------

class Inputs:
    """A case's inputs converted once for one framework.

    Attributes:
      case: the :class:`Case`.
      class_axis: 1 for torch (channels-first), -1 otherwise.
      mean: the framework's mean over all elements.
      probs, logits: predictions, ``case.dtype``.
      target: dense one-hot (``case.dtype``) or integer labels ``[batch, *spatial]``.
    """

    def prediction(self, loss):
        return self.logits if loss is not None and loss.logits else self.probs

    def nbytes(self, loss) -> int:
        return int(_nbytes(self.prediction(loss)) + _nbytes(self.target))


def _nbytes(x):
    if hasattr(x, "nbytes"):
        return x.nbytes
    return x.numel() * x.element_size()  # torch


class TorchInputs(Inputs):
    def __init__(self, case: Case, arrays, device: str):
        import torch

        self.case, self.class_axis, self.mean, self.device = case, 1, torch.mean, torch.device(device)
        dtype = getattr(torch, case.dtype)

        def prediction(x):
            return torch.from_numpy(channels_first(x)).to(self.device, dtype).requires_grad_()

        self.probs, self.logits = prediction(arrays.probs), prediction(arrays.logits)
        if case.sparse:
            self.target = torch.from_numpy(arrays.labels).to(self.device)
        else:
            self.target = torch.from_numpy(channels_first(arrays.onehot)).to(self.device, dtype)


class JaxInputs(Inputs):
    def __init__(self, case: Case, arrays, device: str):
        import jax.numpy as jnp

        import jax

        self.case, self.class_axis, self.mean = case, -1, jnp.mean
        self.device = (jax.devices("cpu")[0] if device == "cpu"
                       else [d for d in jax.devices() if d.platform == "gpu"][cuda_index(device)])
        dtype = getattr(jnp, case.dtype)

        def put(x, dtype):
            return jax.device_put(jnp.asarray(x, dtype), self.device)

        self.probs, self.logits = put(arrays.probs, dtype), put(arrays.logits, dtype)
        # int32: JAX runs without x64 here, as most users do.
        self.target = put(arrays.labels, jnp.int32) if case.sparse else put(arrays.onehot, dtype)


class TensorFlowInputs(Inputs):
    def __init__(self, case: Case, arrays, device: str):
        import tensorflow as tf

        self.case, self.class_axis, self.mean, self.device = case, -1, tf.reduce_mean, None
        dtype = getattr(tf, case.dtype)
        self.probs = tf.cast(tf.constant(arrays.probs), dtype)
        self.logits = tf.cast(tf.constant(arrays.logits), dtype)
        self.target = tf.constant(arrays.labels) if case.sparse else tf.cast(tf.constant(arrays.onehot), dtype)

    def nbytes(self, loss) -> int:
        return int(sum(x.dtype.size * int(np.prod(x.shape)) for x in (self.prediction(loss), self.target)))


# -- one forward + backward step per framework ----------------------------------------------

def torch_step(objective, x, t):
    """One forward + backward step; on CUDA it returns with the kernels queued, not finished
    (:func:`device_clock` waits for them)."""
    import torch

    def step():
        value = objective(x, t)
        torch.autograd.grad(value, x)

    return step


def jax_step(objective, x, t):
    import jax

    run = jax.jit(jax.value_and_grad(objective))
    return lambda: jax.block_until_ready(run(x, t))


def tensorflow_step(objective, x, t):
    import tensorflow as tf

    @tf.function
    def run(x, t):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = objective(x, t)
        return value, tape.gradient(value, x)

    def step():
        value, _ = run(x, t)
        value.numpy()  # eager TensorFlow on CPU is synchronous; this also checks the value exists

    return step


FRAMEWORKS = {
    "torch": (TorchInputs, torch_step),
    "jax": (JaxInputs, jax_step),
    "tensorflow": (TensorFlowInputs, tensorflow_step),
}


# -- timing and memory -------------------------------------------------------------------------

def host_clock(step) -> float:
    """Run ``step`` (which returns when its work is done) and return its wall-clock seconds."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def cuda_clock(step) -> float:
    """Seconds between CUDA events recorded before and after ``step`` on the current stream.

    The events time the GPU's own timeline, so host-side launch gaps count (a step bound by
    launch overhead is slow) but the host's wait for the result does not.
    """
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


#: Steps are timed in chunks of at least this many seconds, the unit a quiet-machine check
#: keeps or drops (/proc/stat counts CPU time in 10 ms ticks: shorter chunks read as noise).
CHUNK_S = 0.1


def time_step(step, warmup: int, repeats: int, min_time: float = 0.0, max_repeats: int = 100,
              device_clock=host_clock, gate=None) -> tuple[list[float], list[float], list[float]]:
    """Wall-clock, process CPU and device durations of timed steps after ``warmup`` untimed ones.

    At least ``repeats`` steps are timed, and more (up to ``max_repeats``) until they add up
    to ``min_time`` seconds, so that fast steps get a stable median. CPU time (all threads
    of this process) is the robust figure on a shared machine: time spent waiting for a core
    that another process holds is not counted. On a GPU only the device time means anything:
    :func:`cuda_clock` for torch, the wall clock up to ``block_until_ready`` for JAX.
    ``gate`` (a :class:`machine.QuietGate`) drops chunks of steps timed while other processes
    held the CPUs, which inflates the wall clock, most of all with several threads.
    """
    for _ in range(warmup):
        device_clock(step)
    wall, cpu, device = [], [], []

    def more(count, seconds):  # are more steps wanted after ``count`` taking ``seconds``?
        return (count < repeats or seconds < min_time) and count < max_repeats

    while more(len(wall), sum(wall)):
        chunk, chunk_s = [], 0.0
        with machine.OtherLoad() as load:
            while (not chunk or chunk_s < CHUNK_S) and more(len(wall) + len(chunk), sum(wall) + chunk_s):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                measured = device_clock(step)
                chunk.append((time.perf_counter() - start_wall, time.process_time() - start_cpu, measured))
                chunk_s += chunk[-1][0]
        if gate is None or gate.keep(load, chunk_s):
            wall += [c[0] for c in chunk]
            cpu += [c[1] for c in chunk]
            device += [c[2] for c in chunk]
    return wall, cpu, device


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class ResidentPeak:
    """Peak resident memory of one step on CPU (see the module docstring)."""

    def __init__(self):
        self.resettable = os.path.exists("/proc/self/clear_refs")
        self.libc = None
        try:
            self.libc = ctypes.CDLL("libc.so.6")
            # Undo the caching settings the timing ran with (see __main__.CACHING_MALLOC):
            self.libc.mallopt(-2, 0)  # M_TOP_PAD
            self.libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
            self.libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: large blocks via mmap
        except (OSError, AttributeError):  # not glibc
            self.libc = None
        self.method = ("cpu: VmHWM - VmRSS around the step (clear_refs reset, mmap threshold 64 KiB)"
                       if self.resettable else "cpu: ru_maxrss delta (lifetime peak; approximate)")

    def measure(self, step) -> float:
        gc.collect()
        if self.libc is not None:
            self.libc.malloc_trim(0)
        if self.resettable:
            before = _status_kb("VmRSS")
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            step()
            return (_status_kb("VmHWM") - before) / 1024.0
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0


class TensorFlowPeak:
    """TensorFlow's own allocator statistics (its CPU allocator keeps freed memory, so RSS
    would not see a step's temporaries)."""

    method = "tensorflow: get_memory_info('CPU:0') peak - current before the step"

    def measure(self, step) -> float:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        step()
        return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / MEGABYTE


class CudaPeak:
    method = "cuda: torch.cuda.max_memory_allocated - memory_allocated before the step"

    def measure(self, step) -> float:
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / MEGABYTE


# -- the run -------------------------------------------------------------------------------------

def run(case_name, contender_name, loss_names, *, quick=False, warmup=1, repeats=3,
        device="cpu", memory=True, threads=0, min_time=0.0, quiet_wait=0.0) -> dict:
    """Measure ``contender`` on ``case`` for each loss; returns a JSON-ready dict.

    ``quiet_wait``: seconds to wait, at most, for other processes to leave the CPUs before
    timing (see :func:`machine.wait_until_quiet`); each loss records the share of the CPUs
    other processes took while it was timed (``other_cpu_share``).
    """
    case = get_case(case_name, quick=quick)
    contender = CONTENDERS[contender_name]
    record = {"case": case.name, "contender": contender.name, "framework": contender.framework,
              "device": device, "threads": threads, "results": []}
    pin_jax_platform(device)
    reason = missing_requirement(contender) or device_problem(contender.framework, device)
    if reason is not None:
        record["skipped"] = reason
        return record
    _limit_threads(contender.framework, threads)
    make_inputs, make_step = FRAMEWORKS[contender.framework]
    inputs = make_inputs(case, make_arrays(case), device)
    clock = cuda_clock if contender.framework == "torch" and device.startswith("cuda") else host_clock
    record["waited_for_quiet_s"] = machine.wait_until_quiet(quiet_wait)
    gate = machine.QuietGate(quiet_wait)  # with no budget it keeps every chunk and only measures
    steps = {}
    for name in (n for n in loss_names if n in contender.losses):
        loss = None if name == FLOOR else get_loss(name)
        entry = {"loss": name, "inputs_mb": inputs.nbytes(loss) / MEGABYTE}
        try:
            x = inputs.prediction(loss)
            objective = contender.objective(loss, inputs)
            step = make_step(objective, x, inputs.target)
            dropped = gate.new_figure()
            entry["wall_s"], entry["cpu_s"], entry["device_s"] = time_step(
                step, warmup, repeats, min_time, device_clock=clock, gate=gate)
            entry["other_cpu_share"], entry["chunks_dropped_for_load"] = gate.other_share, gate.dropped - dropped
            for clock_name in ("wall", "cpu", "device"):
                entry[f"median_{clock_name}_s"] = statistics.median(entry[f"{clock_name}_s"])
            if getattr(objective, "note", None):
                entry["note"] = objective.note
            steps[name] = step
        except Exception as exc:  # one unsupported combination must not lose the others
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
            # TensorFlow puts the actual error on the last line ("in user code:" first).
            entry["error"] = f"{type(exc).__name__}: {lines[0]}" + (f" … {lines[-1]}" if len(lines) > 1 else "")
            entry["traceback"] = traceback.format_exc(limit=-3)
        record["results"].append(entry)
    meter = _memory_meter(contender.framework, device) if memory and steps else None
    if meter is not None:
        record["memory_method"] = meter.method
        for entry in record["results"]:
            if entry["loss"] in steps:
                entry["peak_mb"] = meter.measure(steps[entry["loss"]])
    record["versions"] = _framework_versions(contender.framework)
    record["threads_used"] = threads_used(contender.framework, threads)
    return record


def _memory_meter(framework: str, device: str):
    if device.startswith("cuda"):
        # JAX's device statistics keep a lifetime peak that cannot be reset: not measured.
        return CudaPeak() if framework == "torch" else None
    if framework == "tensorflow":
        return TensorFlowPeak()
    return ResidentPeak()


def cuda_index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def device_problem(framework: str, device: str) -> str | None:
    """Why ``framework`` cannot run on ``device`` (``None`` when it can)."""
    if device == "cpu":
        return None
    if framework == "tensorflow":
        return "the TensorFlow contenders run on CPU only; --device cuda times torch and JAX"
    if framework == "torch":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return None if cuda_index(device) < count else f"torch sees {count} CUDA device(s), not {device}"
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if cuda_index(device) < len(gpus):
        return None
    return f"JAX sees {len(gpus)} GPU(s), not {device} (devices: {', '.join(sorted({d.platform for d in jax.devices()}))})"


def pin_jax_platform(device: str):
    """A CPU run keeps JAX on the CPU; a GPU run stops it from taking most of the GPU's memory
    up front (torch shares the card in ``--in-process`` runs). Only before JAX is imported."""
    if "jax" in sys.modules:
        return
    if device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    else:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def thread_environment(threads: int) -> dict:
    """Environment variables that cap every framework's CPU thread pools (0: no cap).

    They must be set before the framework is imported, so the parent process passes them to
    each worker. OpenMP matters most: inductor's kernels spin-wait on a busy machine.
    """
    if threads <= 0:
        return {}
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n,
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                      f"intra_op_parallelism_threads={n}").strip(),
    }


def _limit_threads(framework: str, threads: int):
    """Apply the cap in this process too (for in-process use such as the smoke test)."""
    if threads <= 0:
        return
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    elif framework == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already initialised: the environment decided
            pass


def threads_used(framework: str, requested: int) -> dict:
    """The intra-op thread count the framework ran with, and where the figure comes from.

    ``requested`` 0 leaves each framework its default; the report labels its views with
    these counts, so that "default" always says how many threads that was on this machine.
    """
    if framework == "torch":
        import torch

        return {"intra_op": torch.get_num_threads(), "source": "torch.get_num_threads()"}
    if framework == "tensorflow":
        import tensorflow as tf

        value = tf.config.threading.get_intra_op_parallelism_threads()
        if value:
            return {"intra_op": value, "source": "tf.config.threading"}
        # 0 means TensorFlow's default, one thread per core.
        return {"intra_op": os.cpu_count(), "source": "TensorFlow default (one per core)"}
    if requested > 0:
        return {"intra_op": requested, "source": "XLA_FLAGS intra_op_parallelism_threads"}
    return {"intra_op": os.cpu_count(), "source": "XLA default (one per core)"}


def _framework_versions(framework):
    module = sys.modules.get(framework)
    return {framework: getattr(module, "__version__", "?")} if module else {}


def gpu_name(device: str) -> str | None:
    """The CUDA device's name as torch reports it (``None`` on CPU or without CUDA)."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return torch.cuda.get_device_name(cuda_index(device)) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not lose the record
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--case", required=True)
    parser.add_argument("--contender", required=True, choices=sorted(CONTENDERS))
    parser.add_argument("--losses", required=True, help="comma-separated loss names (or 'floor')")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--min-time", type=float, default=0.0)
    parser.add_argument("--quiet-wait", type=float, default=0.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    record = run(args.case, args.contender, args.losses.split(","), quick=args.quick,
                 warmup=args.warmup, repeats=args.repeats, device=args.device,
                 memory=not args.no_memory, threads=args.threads, min_time=args.min_time,
                 quiet_wait=args.quiet_wait)
    with open(args.out, "w") as out:
        json.dump(record, out)


if __name__ == "__main__":
    main()
