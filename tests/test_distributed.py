"""Distributed batch losses: a data-parallel step equals one process holding the whole batch.

SPEC §7 ("Distributed exactness"). Each framework runs where it needs its own process:

* torch: two ranks over gloo on 127.0.0.1 (``distributed_torch_worker.py``), a 1x1
  convolution in ``DistributedDataParallel``, the batch split 2 + 3;
* JAX: four host devices (``XLA_FLAGS``) in ``distributed_jax_check.py``: ``shard_map``,
  ``pmap`` and ``jit`` of sharded arrays, two samples per device;
* TensorFlow: ``MirroredStrategy`` over two logical CPUs (``distributed_tf_check.py``):
  ``strategy.run`` with a ``GradientTape``, the batch split 2 + 4, and ``model.fit``.

Everything is float64 with an element mask; the parallel runs sum the same numbers in
another order, hence ``RTOL``/``ATOL`` rather than equality. What is exact, and how the
per-replica gradients relate to the single-process ones, differs by framework (see the tests).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

RTOL, ATOL = 1e-10, 1e-12
TESTS = Path(__file__).parent
JAX_DEVICES = 4  # distributed_jax_check.DEVICES; the script imports jax, so not imported here


def _environment(**extra) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)
    root = str(TESTS.parent)  # the checkout, in case lossfns is not installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _run_script(script: str, output: Path, timeout: int, **env) -> dict:
    result = subprocess.run([sys.executable, str(TESTS / script), str(output)], env=_environment(**env),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{script} failed:\n{result.stderr[-4000:]}")
    return json.loads(output.read_text())


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# --- torch.distributed: DDP over gloo ---------------------------------------------------

TORCH_WORLD_SIZE = 2
TORCH_LOSSES = ("DiceLoss", "AsymmetricUnifiedFocalLoss", "GeneralizedDiceLoss", "DiceCELoss")


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def torch_ranks(tmp_path_factory):
    """What each rank saved; the ranks run once per test session."""
    torch = pytest.importorskip("torch")
    if sys.platform == "win32" or not torch.distributed.is_available():
        pytest.skip("needs torch.distributed with gloo over loopback (Linux/macOS)")
    directory = tmp_path_factory.mktemp("torch_ranks")
    port = str(_free_loopback_port())
    command = [sys.executable, str(TESTS / "distributed_torch_worker.py")]
    ranks = [
        subprocess.Popen([*command, str(rank), str(TORCH_WORLD_SIZE), port, str(directory)],
                         env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(TORCH_WORLD_SIZE)
    ]
    try:
        outputs = [rank.communicate(timeout=120) for rank in ranks]
    finally:
        for rank in ranks:  # a rank still waiting for its peer after the timeout
            if rank.poll() is None:
                rank.kill()
                rank.wait()
    for rank, (_, stderr) in zip(ranks, outputs):
        assert rank.returncode == 0, stderr[-4000:]
    return [torch.load(directory / f"rank{rank}.pt") for rank in range(TORCH_WORLD_SIZE)]


@functools.lru_cache(maxsize=None)
def _torch_single_process(class_name: str) -> dict:
    """The loss and gradients of one process, without DDP, on the whole batch."""
    import distributed_torch_worker as worker
    from lossfns.adapters import torch as adapter

    options, softmax = worker.LOSSES[class_name]
    loss_fn = getattr(adapter, class_name)(batch=True, **options)
    return worker.loss_and_gradients(worker.make_model(softmax), loss_fn, *worker.make_data())


@pytest.mark.parametrize("class_name", TORCH_LOSSES)
def test_torch_every_rank_gets_the_whole_batch_loss(torch_ranks, class_name):
    expected = _torch_single_process(class_name)["loss"]
    for result in torch_ranks:
        assert_close(result[class_name]["loss"], expected)


@pytest.mark.parametrize("class_name", TORCH_LOSSES)
def test_torch_ddp_parameter_gradients_equal_the_single_process_ones(torch_ranks, class_name):
    """DDP averages world_size x each rank's contribution: the exact parameter gradient."""
    expected = _torch_single_process(class_name)["parameter_grads"]
    for result in torch_ranks:
        for actual, wanted in zip(result[class_name]["parameter_grads"], expected, strict=True):
            assert_close(actual, wanted)


@pytest.mark.parametrize("class_name", TORCH_LOSSES)
def test_torch_local_output_gradient_is_world_size_times_its_slice(torch_ranks, class_name):
    """The all-reduce's backward sums the equal cotangents of every rank (SPEC §7)."""
    import distributed_torch_worker as worker

    expected = _torch_single_process(class_name)["output_grad"]
    for rank, result in enumerate(torch_ranks):
        assert_close(result[class_name]["output_grad"],
                     TORCH_WORLD_SIZE * expected[worker.SHARDS[rank]])


def test_torch_all_reduce_raises_no_deprecation_warning(torch_ranks):
    """torch 2.13 deprecates ``torch.distributed.nn.functional.all_reduce``; the adapter uses
    the functional collective that replaces it (differentiable: the tests above)."""
    for result in torch_ranks:
        assert result["warnings"] == []


def test_torch_compile_fullgraph_with_a_process_group(torch_ranks):
    """The functional collective traces into the graph (the legacy all-reduce raises under
    ``torch.compile``): loss and DDP parameter gradients equal the single process's."""
    import distributed_torch_worker as worker

    expected = _torch_single_process(worker.COMPILED_LOSS)
    for result in torch_ranks:
        compiled = result[f"{worker.COMPILED_LOSS}_compiled"]
        assert_close(compiled["loss"], expected["loss"])
        for actual, wanted in zip(compiled["parameter_grads"], expected["parameter_grads"], strict=True):
            assert_close(actual, wanted)


# --- JAX: shard_map, pmap and sharded jit over four host devices ------------------------

JAX_LOSSES = ("dice_loss", "asymmetric_unified_focal_loss", "generalized_dice_loss", "dice_ce_loss")


@pytest.fixture(scope="module")
def jax_report(tmp_path_factory):
    _require("jax")
    output = tmp_path_factory.mktemp("jax") / "jax.json"
    env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={JAX_DEVICES}", "JAX_PLATFORMS": "cpu"}
    return _run_script("distributed_jax_check.py", output, timeout=180, **env)["losses"]


@pytest.mark.parametrize("name", JAX_LOSSES)
def test_jax_shard_map_gives_every_device_the_whole_batch_loss(jax_report, name):
    report = jax_report[name]
    assert len(report["shard_map_values"]) == JAX_DEVICES
    assert_close(report["shard_map_values"], np.full(JAX_DEVICES, report["whole_value"]))


@pytest.mark.parametrize("name", JAX_LOSSES)
def test_jax_shard_map_gradients_are_the_whole_batch_gradients(jax_report, name):
    """With ``check_vma=True`` (the default) the loss is one replicated value, and the
    transpose of ``psum`` hands its cotangent to every device unchanged: the gradient of the
    sharded predictions and of replicated parameters (taken outside or inside ``shard_map``)
    is exactly the whole-batch one, with no averaging to add."""
    report = jax_report[name]
    assert_close(report["shard_map_grad"], report["whole_grad"])
    assert_close(report["shard_map_model_grad"], report["whole_model_grad"])
    assert_close(report["shard_map_inner_model_grad"], report["whole_model_grad"])


@pytest.mark.parametrize("name", JAX_LOSSES)
def test_jax_unchecked_and_pmap_local_gradients_need_a_pmean(jax_report, name):
    """Without replication tracking (``check_vma=False``, ``pmap``) each device differentiates
    its own copy of the loss and ``psum`` transposes to a ``psum``: local gradients are
    device-count times the whole-batch ones, as in torch, and ``pmean`` makes them exact."""
    report = jax_report[name]
    assert_close(report["unchecked_local_grads"], JAX_DEVICES * np.asarray(report["whole_grad"]))
    assert_close(report["pmap_local_grad_sum"], JAX_DEVICES * np.asarray(report["whole_model_grad"]))
    for averaged in report["pmap_pmean_grads"]:
        assert_close(averaged, report["whole_model_grad"])


@pytest.mark.parametrize("name", JAX_LOSSES)
def test_jax_jit_of_sharded_global_arrays_gives_the_whole_batch_loss(jax_report, name):
    """No ``axis_name``: the arrays are sharded over an (explicit-axis) mesh and XLA
    partitions the loss itself."""
    report = jax_report[name]
    result = report["jit_sharded"]
    assert "error" not in result, result.get("error")
    assert_close(result["value"], report["whole_value"])
    assert_close(result["grad"], report["whole_grad"])


# --- TensorFlow: MirroredStrategy over two logical CPUs ---------------------------------

TF_LOSSES = ("DiceLoss", "AsymmetricUnifiedFocalLoss", "GeneralizedDiceLoss", "DiceCELoss")


@pytest.fixture(scope="module")
def tf_report(tmp_path_factory):
    _require("tensorflow")
    _require("keras")
    output = tmp_path_factory.mktemp("tf") / "tf.json"
    return _run_script("distributed_tf_check.py", output, timeout=240, KERAS_BACKEND="tensorflow")


@pytest.mark.parametrize("class_name", TF_LOSSES)
def test_tf_each_replica_returns_its_share_of_the_whole_batch_loss(tf_report, class_name):
    """Keras' convention: a replica's loss is the global one over num_replicas, so that the
    optimizer's sum of the replicas' gradients is the gradient of the global loss."""
    report = tf_report["step"][class_name]
    replicas = report["num_replicas"]
    assert replicas == len(report["replicas"]) == 2
    for replica in report["replicas"]:
        assert_close(replica["loss"], report["single"]["loss"] / replicas)


@pytest.mark.parametrize("class_name", TF_LOSSES)
def test_tf_replica_gradients_sum_to_the_single_device_gradients(tf_report, class_name):
    """Summed over replicas (what the optimizer applies) the parameter gradients are the
    single-device ones; each replica's gradient of its own output is exactly its slice (the
    1/num_replicas scale and the all-reduce's summing backward cancel)."""
    report = tf_report["step"][class_name]
    single, replicas = report["single"], report["replicas"]
    for key in ("kernel_grad", "bias_grad"):
        assert_close(sum(np.asarray(replica[key]) for replica in replicas), single[key])
    assert_close(np.concatenate([replica["output_grad"] for replica in replicas]), single["output_grad"])


def test_tf_fit_under_mirrored_strategy_follows_the_single_device_run(tf_report):
    single, mirrored = tf_report["fit"]["single"], tf_report["fit"]["mirrored"]
    history = np.asarray(mirrored["loss"])
    assert np.all(np.isfinite(history)) and np.all(np.diff(history) < 0), history
    assert_close(history, single["loss"])
    for actual, expected in zip(mirrored["weights"], single["weights"], strict=True):
        assert_close(actual, expected)


@pytest.mark.parametrize("name", ["sigmoid_int", "sigmoid_float", "unit_class_axis_int"])
def test_tf_fit_under_mirrored_strategy_with_labels_keras_hands_over_as_floats(tf_report, name):
    """Under the strategy Keras gives the loss a float copy of the labels: one sigmoid
    channel's 0/1 labels without a class axis are the binary target, several classes'
    index-shaped labels are class indices (both crashed: issue 11, defect 3)."""
    entry = tf_report["fit_labels"][name]
    for run in ("single", "mirrored"):
        assert "error" not in entry[run], entry[run]["error"]
    history = np.asarray(entry["mirrored"]["loss"])
    assert np.all(np.isfinite(history))
    assert_close(history, entry["single"]["loss"])
    for actual, expected in zip(entry["mirrored"]["weights"], entry["single"]["weights"], strict=True):
        assert_close(actual, expected)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "None"])
def test_tf_replica_reductions_follow_a_stock_keras_loss(tf_report, reduction):
    """Per-sample losses reduced in a replica as Keras reduces its own: the same weighting,
    divisor and ``1 / num_replicas`` scaling as a stock loss on the same values."""
    entry = tf_report["reductions"][reduction]
    for ours, stock in (("ours", "keras"), ("ours_weighted", "keras_weighted")):
        assert len(entry[ours]) == 2
        for actual, expected in zip(entry[ours], entry[stock], strict=True):
            assert_close(actual, expected)
