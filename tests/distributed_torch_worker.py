"""One rank of a data-parallel (DDP) training step with lossfns' batch losses, on CPU.

    python tests/distributed_torch_worker.py RANK WORLD_SIZE PORT OUTPUT_DIR

``tests/test_distributed.py`` starts one process per rank; they meet over gloo at
``127.0.0.1:PORT`` (loopback only). Each rank takes its part of one float64 batch
(:data:`SHARDS`, deliberately unequal), runs a 1x1 convolution wrapped in
``DistributedDataParallel`` and, for each loss of :data:`LOSSES` with ``batch=True`` and
``process_group=``, saves to ``OUTPUT_DIR/rank{RANK}.pt``: the loss, the gradient with
respect to the model output (this rank's part) and the parameter gradients after DDP's
averaging. The same for :data:`COMPILED_LOSS` under ``torch.compile(fullgraph=True)`` (key
``"<name>_compiled"``), and under ``"warnings"`` the messages of the deprecation warnings
raised meanwhile. Importing this module imports torch and NumPy only (the test reuses the
data, the model and the shards from here).
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import warnings

import numpy as np
import torch

BATCH, FEATURES, CLASSES, HEIGHT, WIDTH = 5, 2, 3, 3, 4
#: The part of the batch each rank holds: two samples and three.
SHARDS = (slice(0, 2), slice(2, 5))
#: class name -> (constructor options, whether the model ends in a softmax).
LOSSES = {
    "DiceLoss": ({}, True),
    "AsymmetricUnifiedFocalLoss": ({"from_logits": True}, False),
    "GeneralizedDiceLoss": ({}, True),
    "DiceCELoss": ({"from_logits": True, "label_smoothing": 0.1}, False),
}
#: Compiled whole (the all-reduce inside the graph) as well as run eagerly.
COMPILED_LOSS = "DiceLoss"
TIMEOUT = datetime.timedelta(seconds=60)


def loopback_interface() -> str:
    """The loopback interface's name (``lo`` on Linux, ``lo0`` on macOS), for gloo."""
    names = [name for _, name in socket.if_nameindex()]
    return next((name for name in names if name.startswith("lo")), "lo")


def make_data(seed: int = 0):
    """``(x, labels, mask)``: ``[N, F, H, W]`` float64, ``[N, H, W]`` int64, ``[N, H, W]`` 0/1."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(BATCH, FEATURES, HEIGHT, WIDTH)))
    labels = torch.from_numpy(rng.integers(0, CLASSES, size=(BATCH, HEIGHT, WIDTH)))
    mask = torch.from_numpy((rng.random((BATCH, HEIGHT, WIDTH)) > 0.3).astype(np.float64))
    return x, labels, mask


def make_model(softmax: bool) -> torch.nn.Module:
    """A float64 1x1 convolution with fixed weights, optionally followed by a softmax."""
    rng = np.random.default_rng(1)
    conv = torch.nn.Conv2d(FEATURES, CLASSES, 1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(rng.normal(size=conv.weight.shape)))
        conv.bias.copy_(torch.from_numpy(rng.normal(size=conv.bias.shape) * 0.1))
    return torch.nn.Sequential(conv, torch.nn.Softmax(dim=1)) if softmax else conv


def loss_and_gradients(model, loss_fn, x, labels, mask) -> dict:
    """One forward and backward pass; the gradients of the output and of the parameters."""
    output = model(x)
    output.retain_grad()
    loss = loss_fn(output, labels, mask)
    loss.backward()
    return {
        "loss": loss.detach(),
        "output_grad": output.grad,
        "parameter_grads": [p.grad for p in model.parameters()],
    }


def main(rank: int, world_size: int, port: int, output_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from lossfns.adapters import torch as adapter

    os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback_interface())
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=TIMEOUT)
    try:
        x, labels, mask = (t[SHARDS[rank]] for t in make_data())
        results = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for class_name, (options, softmax) in LOSSES.items():
                model = DistributedDataParallel(make_model(softmax))
                loss_fn = getattr(adapter, class_name)(batch=True, process_group=dist.group.WORLD, **options)
                results[class_name] = loss_and_gradients(model, loss_fn, x, labels, mask)
            options, softmax = LOSSES[COMPILED_LOSS]
            loss_fn = getattr(adapter, COMPILED_LOSS)(batch=True, process_group=dist.group.WORLD, **options)
            compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
            results[f"{COMPILED_LOSS}_compiled"] = loss_and_gradients(
                DistributedDataParallel(make_model(softmax)), compiled, x, labels, mask)
        results["warnings"] = [
            str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))
        ]
        torch.save(results, os.path.join(output_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears the group down while another still uses it
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
