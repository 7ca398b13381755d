"""Data-parallel JAX batch losses on four CPU devices: ``shard_map``, ``pmap`` and sharded ``jit``.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/distributed_jax_check.py out.json

JAX fixes its device count when it initialises, so ``tests/test_distributed.py`` runs this
script in a subprocess and asserts on the JSON it writes: for each loss, pairs of results
computed two ways, the whole batch on one device (``whole_*``) and the batch sharded over
the ``"data"`` axis of a four-device mesh, two samples per device. Everything is float64.

Recorded per loss of :data:`LOSSES` (``batch=True``, with an element mask):

* ``shard_map_values``: every device's loss (``axis_name="data"``) — each should be the
  whole-batch loss;
* ``shard_map_grad``: ``jax.grad`` of the ``shard_map``-ed loss with respect to the sharded
  predictions (the default ``check_vma=True``);
* ``unchecked_local_grads``: each device's ``jax.grad`` of its own loss, taken inside
  ``shard_map(check_vma=False)``, where ``psum``'s transpose is a ``psum``;
* for a tiny model (logits ``x @ w``, ``w`` replicated): the gradient with respect to ``w``
  from ``jax.grad`` of the ``shard_map``-ed loss, from each device's gradient inside
  ``shard_map`` (``check_vma=True``), from ``pmap`` + ``pmean`` of the local gradients, and
  the sum over devices of ``pmap``'s local gradients;
* ``jit_sharded``: the loss and its gradient when the global arrays are sharded over the mesh
  and the loss is called without ``axis_name`` (XLA partitions it), or the error raised.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from lossfns.adapters import jax as adapter  # noqa: E402

jax.config.update("jax_enable_x64", True)

DEVICES, PER_DEVICE, HEIGHT, WIDTH, FEATURES, CLASSES = 4, 2, 3, 4, 5, 3
BATCH = DEVICES * PER_DEVICE
AXIS = "data"
#: function name -> options (besides ``batch=True``); the model's logits go through them.
LOSSES = {"dice_loss": {}, "asymmetric_unified_focal_loss": {}, "generalized_dice_loss": {},
          "dice_ce_loss": {"label_smoothing": 0.1}}


def make_data(seed: int = 0) -> dict:
    """Probabilities, integer labels, a 0/1 element mask, model features and weights."""
    rng = np.random.default_rng(seed)
    return {
        "probs": jax.nn.softmax(jnp.asarray(rng.normal(size=(BATCH, HEIGHT, WIDTH, CLASSES))), -1),
        "labels": jnp.asarray(rng.integers(0, CLASSES, size=(BATCH, HEIGHT, WIDTH)), dtype=jnp.int32),
        "mask": jnp.asarray((rng.random((BATCH, HEIGHT, WIDTH)) > 0.3).astype(np.float64)),
        "x": jnp.asarray(rng.normal(size=(BATCH, HEIGHT, WIDTH, FEATURES))),
        "w": jnp.asarray(rng.normal(size=(FEATURES, CLASSES))),
    }


def _listed(tree):
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def check_loss(name: str, data: dict, mesh) -> dict:
    """Every result listed in the module docstring for one loss; each group compiles once."""
    function = getattr(adapter, name)
    options = {**LOSSES[name], "batch": True}
    probs, labels, mask, x, w = (data[k] for k in ("probs", "labels", "mask", "x", "w"))

    def loss(p, t, m, axis_name=None):
        return function(p, t, mask=m, axis_name=axis_name, **options)

    def model_loss(w, x, t, m, axis_name=None):
        return function(x @ w, t, mask=m, from_logits=True, axis_name=axis_name, **options)

    def local_loss(p, t, m):
        return loss(p, t, m, axis_name=AXIS)

    def local_model_loss(w, x, t, m):
        return model_loss(w, x, t, m, axis_name=AXIS)

    @jax.jit
    def whole(p, t, m, w, x):
        value, grad = jax.value_and_grad(loss)(p, t, m)
        model_grad = jax.grad(model_loss)(w, x, t, m)
        return {"whole_value": value, "whole_grad": grad, "whole_model_grad": model_grad}

    report = whole(probs, labels, mask, w, x)

    sharded, replicated = P(AXIS), P()
    data_specs, model_specs = (sharded,) * 3, (replicated, sharded, sharded, sharded)

    @jax.jit
    def sharded_results(p, t, m, w, x):
        def per_device(p, t, m, w, x):
            return local_loss(p, t, m)[None], jax.grad(local_model_loss)(w, x, t, m)

        values, inner_model_grad = jax.shard_map(
            per_device, in_specs=(*data_specs, replicated, sharded), out_specs=(sharded, replicated)
        )(p, t, m, w, x)
        # jax.grad of the mapped function: the usual pattern, jit over the whole step.
        one_loss = jax.shard_map(local_loss, in_specs=data_specs, out_specs=replicated)
        one_model_loss = jax.shard_map(local_model_loss, in_specs=model_specs, out_specs=replicated)
        unchecked = jax.shard_map(
            jax.grad(local_loss), in_specs=data_specs, out_specs=sharded, check_vma=False
        )
        return {
            "shard_map_values": values,
            "shard_map_grad": jax.grad(one_loss)(p, t, m),
            "shard_map_model_grad": jax.grad(one_model_loss)(w, x, t, m),
            "shard_map_inner_model_grad": inner_model_grad,
            "unchecked_local_grads": unchecked(p, t, m),
        }

    with jax.set_mesh(mesh):
        # Placed as the specs say: shard_map does not reshard arrays over explicit axes.
        placed = [_put(a, mesh, spec) for a, spec in
                  zip((probs, labels, mask, w, x), (*data_specs, replicated, sharded))]
        report.update(sharded_results(*placed))

    # pmap: a leading axis of devices; w is broadcast (in_axes=None).
    def pmapped(w, x, t, m):
        grad = jax.grad(local_model_loss)(w, x, t, m)
        return grad, jax.lax.pmean(grad, AXIS)

    per_device = [a.reshape(DEVICES, PER_DEVICE, *a.shape[1:]) for a in (x, labels, mask)]
    local_grads, averaged = jax.pmap(pmapped, axis_name=AXIS, in_axes=(None, 0, 0, 0))(w, *per_device)
    report["pmap_local_grad_sum"] = local_grads.sum(axis=0)
    report["pmap_pmean_grads"] = averaged

    report["jit_sharded"] = _jit_sharded(loss, probs, labels, mask, mesh)
    return _listed(report)


def _put(array, mesh, spec):
    """``array`` laid out over ``mesh`` as ``spec`` says."""
    return jax.device_put(array, NamedSharding(mesh, spec))


def _jit_sharded(loss, probs, labels, mask, mesh) -> dict:
    """The loss of global arrays sharded over the mesh, without ``axis_name``."""
    with jax.set_mesh(mesh):
        placed = [_put(a, mesh, P(AXIS)) for a in (probs, labels, mask)]
        try:
            value, grad = jax.jit(jax.value_and_grad(loss))(*placed)
        except Exception as error:  # recorded, so that the other checks still run
            return {"error": f"{type(error).__name__}: {error}"}
    return {"value": value, "grad": grad}


def main(output: str) -> None:
    if len(jax.devices()) < DEVICES:
        raise SystemExit(f"needs {DEVICES} devices (XLA_FLAGS), got {jax.devices()}")
    mesh = jax.make_mesh((DEVICES,), (AXIS,))
    data = make_data()
    report = {
        "mesh_axis_types": str(getattr(mesh, "axis_types", None)),
        "losses": {name: check_loss(name, data, mesh) for name in LOSSES},
    }
    with open(output, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
