"""The torch adapter: one ``nn.Module`` per registry loss, equal to the core (SPEC §7).

The reference is the core called on NumPy arrays in the channels-last layout, followed by
the module's reduction; gradients are compared with JAX's gradient of the core.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_backend_check import CASES, CLASSES, changed_hyperparameters, make_inputs, make_weights, options_of
from lossfns import registry
from registry_fixtures import DOUBLE_DICE

torch = pytest.importorskip("torch")
adapter = pytest.importorskip("lossfns.adapters.torch")

# array-api-compat caches namespace lookups with lru_cache, which dynamo traces through.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

SPECS = pytest.mark.parametrize("spec", registry.LOSSES, ids=lambda s: s.name)
#: Losses without a host step: the Hausdorff loss's distance fields break a fullgraph
#: compile by design (tests/test_hausdorff.py checks its error).
TRACEABLE = [s for s in registry.LOSSES if not s.host_step]
ALL_CLASSES = [(spec, name) for spec in registry.LOSSES for name in registry.class_names(spec)]
RTOL, ATOL = 1e-10, 1e-12  # float64 (SPEC §9)


def channels_first(y_true, y_pred):
    """NumPy channels-last inputs as torch ``[N, C, H, W]`` tensors (sparse labels int64)."""
    y_pred = torch.from_numpy(np.moveaxis(y_pred, -1, 1).copy())
    if y_true.ndim == y_pred.ndim:
        return torch.from_numpy(np.moveaxis(y_true, -1, 1).copy()), y_pred
    return torch.from_numpy(y_true.astype(np.int64)), y_pred


def core_values(spec, case, **arguments):
    """Per-sample core values of a case, channels-last NumPy."""
    y_true, y_pred = make_inputs(case, spec=spec)
    return np.asarray(spec.function(y_true, y_pred, **options_of(case, spec), **arguments))


@SPECS
@pytest.mark.parametrize("case", CASES)
def test_value_is_core_then_reduction(spec, case):
    target, input = channels_first(*make_inputs(case, spec=spec))
    expected = core_values(spec, case)
    cls = getattr(adapter, spec.class_name)
    per_sample = cls(reduction="none", **options_of(case, spec))(input, target)
    assert per_sample.shape == (input.shape[0],) and per_sample.dtype == torch.float64
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=RTOL, atol=ATOL)
    mean = cls(**options_of(case, spec))(input, target)  # "mean" is the default
    np.testing.assert_allclose(mean.item(), expected.mean(), rtol=RTOL, atol=ATOL)
    total = cls(reduction="sum", **options_of(case, spec))(input, target)
    np.testing.assert_allclose(total.item(), expected.sum(), rtol=RTOL, atol=ATOL)


@SPECS
def test_hyperparameters_options_and_mask_reach_the_core(spec):
    changed = changed_hyperparameters(spec)
    _, element_weight = make_weights()
    y_true, y_pred = make_inputs("sparse", spec=spec)
    expected = spec.function(y_true, y_pred, mask=element_weight, batch=True, **changed)
    target, input = channels_first(y_true, y_pred)
    module = getattr(adapter, spec.class_name)(batch=True, reduction="none", **changed)
    actual = module(input, target, mask=torch.from_numpy(element_weight))
    assert actual.shape == ()
    np.testing.assert_allclose(actual.item(), float(expected), rtol=RTOL, atol=ATOL)


def test_region_options_reach_the_core():
    y_true, y_pred = make_inputs("dense")
    options = dict(average="weighted", class_weights=[0.2, 0.3, 0.5], include_background=False)
    expected = registry.get("tversky_loss").function(y_true, y_pred, **options)
    target, input = channels_first(y_true, y_pred)
    actual = adapter.TverskyLoss(reduction="none", **options)(input, target)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("spec", "class_name"), ALL_CLASSES, ids=[n for _, n in ALL_CLASSES])
def test_generated_class(spec, class_name):
    cls = getattr(adapter, class_name)
    assert issubclass(cls, adapter.LossModule) and issubclass(cls, torch.nn.Module)
    assert cls.spec is spec and class_name in adapter.__all__
    parameters = inspect.signature(cls).parameters
    for h in spec.hyperparameters:
        assert parameters[h.name].default == h.default
    assert parameters["class_axis"].default == 1
    assert parameters["reduction"].default == "mean"
    assert parameters["process_group"].default is None
    assert set(spec.options) <= set(parameters)
    assert f"lossfns.{spec.name}" in cls.__doc__


def test_aliases_are_subclasses_with_the_same_values():
    target, input = channels_first(*make_inputs("sparse"))
    assert issubclass(adapter.DiceLoss, adapter.F1Loss)
    assert issubclass(adapter.JaccardLoss, adapter.IoULoss)
    assert adapter.DiceLoss()(input, target).item() == adapter.F1Loss()(input, target).item()
    assert adapter.JaccardLoss()(input, target).item() == adapter.IoULoss()(input, target).item()


@SPECS
def test_repr_shows_hyperparameters(spec):
    changed = changed_hyperparameters(spec)
    text = repr(getattr(adapter, spec.class_name)(batch=True, **changed))
    assert text.startswith(spec.class_name + "(")
    for h in spec.hyperparameters:
        assert f"{h.name}={changed.get(h.name, h.default)!r}" in text
    assert "batch=True" in text and "reduction='mean'" in text
    assert "class_axis" not in text  # options at their default stay out of the way


def test_bad_reduction_names_reduction():
    with pytest.raises(ValueError, match="reduction"):
        adapter.TverskyLoss(reduction="average")


@pytest.mark.parametrize(
    ("class_name", "arguments", "error", "message"),
    [
        ("TverskyLoss", {"alpha": -0.1}, ValueError, "alpha"),
        ("HybridFocalLoss", {"focal_gamma": -1.0}, ValueError, "focal_gamma"),
        ("SymmetricUnifiedFocalLoss", {"gamma": 1.5}, ValueError, "gamma"),
        ("ComboLoss", {"beta": 1.5}, ValueError, "beta"),
        ("TverskyLoss", {"average": "median"}, ValueError, "average"),
        ("TverskyLoss", {"class_weights": [1.0, -1.0]}, ValueError, "class_weights"),
        ("CategoricalFocalLoss", {"from_logits": "tanh"}, ValueError, "from_logits"),
        ("F1Loss", {"batch": "yes"}, TypeError, "batch"),
        ("F1Loss", {"alpha": 0.5}, TypeError, "alpha"),
        ("F1Loss", {"process_group": object()}, ValueError, "batch=True"),
    ],
)
def test_construction_checks_arguments(class_name, arguments, error, message):
    with pytest.raises(error, match=message):
        getattr(adapter, class_name)(**arguments)


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        adapter.TverskyLoss(0.3)


@pytest.mark.slow  # a Dynamo trace per loss
@pytest.mark.parametrize("spec", TRACEABLE, ids=lambda s: s.name)
def test_compiles_without_graph_breaks(spec):
    torch._dynamo.reset()
    target, input = channels_first(*make_inputs("sparse", spec=spec))
    module = getattr(adapter, spec.class_name)(**spec.example_arguments(CLASSES))
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    np.testing.assert_allclose(compiled(input, target).item(), module(input, target).item(), rtol=RTOL)


@pytest.mark.parametrize("class_name", ["FocalTverskyLoss", "AsymmetricUnifiedFocalLoss"])
def test_compiled_backward_matches_eager(class_name):
    # aot_eager also traces the backward graph; mask and logits exercise more of the core.
    torch._dynamo.reset()
    target, logits = channels_first(*make_inputs("logits"))
    mask = torch.from_numpy(make_weights()[1])
    module = getattr(adapter, class_name)(from_logits=True)
    eager_input = logits.clone().requires_grad_(True)
    module(eager_input, target, mask).backward()
    compiled_input = logits.clone().requires_grad_(True)
    torch.compile(module, fullgraph=True, backend="aot_eager")(compiled_input, target, mask).backward()
    np.testing.assert_allclose(compiled_input.grad.numpy(), eager_input.grad.numpy(), rtol=1e-9, atol=1e-12)


@SPECS
def test_autocast_bfloat16(spec):
    torch.manual_seed(0)
    target, input = channels_first(*make_inputs("sparse", spec=spec))
    features = torch.randn(input.shape[0], 4, *input.shape[2:])
    layer = torch.nn.Conv2d(4, 3, 1)
    module = getattr(adapter, spec.class_name)(from_logits=True, **spec.example_arguments(CLASSES))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(features)
        loss = module(logits, target)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(layer.weight.grad).all()
    reference = module(logits.detach().float(), target)  # same bfloat16 values, float32 inputs
    np.testing.assert_allclose(loss.item(), reference.item(), rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int64])
def test_integer_target_dtypes(dtype):
    target, input = channels_first(*make_inputs("sparse"))
    expected = core_values(registry.get("categorical_focal_loss"), "sparse").mean()
    actual = adapter.CategoricalFocalLoss()(input, target.to(dtype))
    np.testing.assert_allclose(actual.item(), expected, rtol=RTOL)


@SPECS
def test_gradient_matches_the_core_channels_last(spec):
    """The module's gradient (channels first) is the core's (channels last, NumPy layout),
    whose gradients tests/test_gradcheck.py checks against finite differences and JAX."""
    y_true, logits = make_inputs("logits", spec=spec)
    required = spec.example_arguments(CLASSES)
    core_input = torch.tensor(logits, requires_grad=True)
    core_target = torch.from_numpy(y_true.astype(np.int64) if y_true.dtype.kind == "i" else y_true)
    spec.function(core_target, core_input, from_logits=True, **required).sum().backward()
    target, input = channels_first(y_true, logits)
    input.requires_grad_(True)
    module = getattr(adapter, spec.class_name)(from_logits=True, reduction="sum", **required)
    module(input, target).backward()
    actual = np.moveaxis(input.grad.numpy(), 1, -1)
    np.testing.assert_allclose(actual, core_input.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_a_new_registry_entry_becomes_a_module(monkeypatch):
    monkeypatch.setattr(registry, "LOSSES", (DOUBLE_DICE,))
    namespace = {}
    assert adapter._generate(namespace) == ["DoubleDice"]
    target, input = channels_first(*make_inputs("sparse"))
    value = namespace["DoubleDice"](scale=3.0)(input, target)
    np.testing.assert_allclose(value.item(), 3.0 * adapter.DiceLoss()(input, target).item(), rtol=RTOL)
    assert "scale=3.0" in repr(namespace["DoubleDice"](scale=3.0))


def _distributed_losses(rank, out_dir):
    import torch.distributed as dist

    target, input = channels_first(*make_inputs("sparse"))
    shard = slice(rank, rank + 1)  # the batch of 2 split over 2 ranks
    local = input[shard].clone().requires_grad_(True)
    for class_name in ("F1Loss", "AsymmetricUnifiedFocalLoss"):
        module = getattr(adapter, class_name)(batch=True, process_group=dist.group.WORLD)
        local.grad = None
        loss = module(local, target[shard])
        loss.backward()
        path = os.path.join(out_dir, f"{class_name}_{rank}.pt")
        torch.save({"loss": loss.detach(), "grad": local.grad}, path)


def _distributed_worker(rank, world_size, init_file, out_dir):
    import weakref

    # torch.distributed.nn.functional is imported before the group exists: it binds
    # `group=group.WORLD` as default arguments, and imported later (by the autograd
    # all-reduce, or via torch._dynamo by the functional one) it would keep the group alive
    # after destroy_process_group(). Its gloo threads would then outlive the interpreter,
    # and one of them freeing a work launched in backward (whose thread-local state holds
    # autograd's contextvars) has to take the GIL during finalization: the thread is
    # unwound and std::terminate aborts the rank.
    import torch.distributed as dist
    import torch.distributed.nn.functional  # noqa: F401

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    world = weakref.ref(dist.group.WORLD)
    try:
        _distributed_losses(rank, out_dir)  # its modules, and their references to the group, are gone
        dist.barrier()  # no rank tears the group down while the other still uses it
    finally:
        dist.destroy_process_group()
    # The last reference gone, the group has joined its threads while Python still runs.
    assert world() is None, "the process group outlives destroy_process_group(); its threads would outlive Python"


@pytest.mark.slow  # spawned ranks
@pytest.mark.skipif(sys.platform == "win32", reason="gloo file init on Linux/macOS")
def test_process_group_gives_the_global_batch_loss(tmp_path):
    """Each rank gets the whole-batch loss; local gradients are world_size x the global ones (SPEC §7)."""
    import torch.multiprocessing as mp

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    world_size = 2
    mp.spawn(_distributed_worker, args=(world_size, str(tmp_path / "init"), str(tmp_path)), nprocs=world_size)
    target, input = channels_first(*make_inputs("sparse"))
    for class_name in ("F1Loss", "AsymmetricUnifiedFocalLoss"):
        whole = input.clone().requires_grad_(True)
        expected = getattr(adapter, class_name)(batch=True)(whole, target)
        expected.backward()
        for rank in range(world_size):
            result = torch.load(tmp_path / f"{class_name}_{rank}.pt")
            np.testing.assert_allclose(result["loss"].item(), expected.item(), rtol=RTOL)
            np.testing.assert_allclose(
                result["grad"].numpy(), world_size * whole.grad[rank:rank + 1].numpy(), rtol=RTOL, atol=ATOL
            )


def test_the_functional_all_reduce_is_found_differentiable_in_a_fresh_process():
    """The dispatcher knows the functional all-reduce's autograd kernel only once its module
    is imported; asked first in a fresh process, the adapter fell back to the deprecated
    legacy all-reduce (a FutureWarning, and rejected under torch.compile)."""
    code = (
        "import torch\n"
        "from lossfns.adapters import torch as adapter\n"
        "print(adapter._functional_all_reduce_is_differentiable())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import torch.distributed._functional_collectives  # noqa: F401 - registers the kernel here

    registered = torch._C._dispatch_has_kernel_for_dispatch_key("_c10d_functional::all_reduce", "Autograd")
    assert registered, "this torch has no autograd kernel for the functional all-reduce"
    assert result.stdout.strip() == "True"


def test_importing_the_adapter_imports_only_torch():
    code = (
        "import sys, lossfns.adapters\n"
        "assert not {'torch', 'jax', 'tensorflow', 'keras'} & set(sys.modules), 'a framework'\n"
        "import lossfns.adapters.torch\n"
        "print(sorted({'jax', 'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow  # an inductor build
@pytest.mark.skipif(
    not any(map(shutil.which, ("g++", "c++", "clang++"))), reason="inductor needs a C++ compiler"
)
def test_inductor_compiles_one_loss():
    # One loss only: inductor's C++ compilation takes seconds even for a tiny graph.
    torch._dynamo.reset()
    target, input = channels_first(*make_inputs("sparse"))
    module = adapter.FocalTverskyLoss(reduction="none")
    compiled = torch.compile(module, fullgraph=True, backend="inductor")
    np.testing.assert_allclose(compiled(input, target).numpy(), module(input, target).numpy(), rtol=1e-9)


def test_get_finds_classes_by_function_name_or_alias():
    from lossfns import adapters

    assert adapters.get("torch", "dice_loss") is adapter.DiceLoss
    assert adapters.get("torch", "tversky_loss") is adapter.TverskyLoss
    with pytest.raises(ValueError, match="framework"):
        adapters.get("mxnet", "dice_loss")
