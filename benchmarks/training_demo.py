"""The same training run in PyTorch, JAX and Keras: one network, one loss, three frameworks.

A small convolutional segmentation network (3×3 conv, tanh, 3×3 conv, tanh, 1×1 conv to
the class logits) is trained with plain gradient descent on synthetic images, in float64,
starting from the same initial weights (drawn once with NumPy and copied into each
framework). The loss is ``dice_ce_loss`` from the lossfns adapter of each framework (or,
while that loss is not registered, ``dice_loss + categorical_crossentropy``), on logits,
averaged over the batch. The three loss curves coincide to rounding; the script prints the
largest relative difference and writes, under ``--out-dir`` (``benchmarks/results``):

* ``training_demo.png``: the three curves and their relative differences;
* ``training_demo.json``: the curves and the settings;
* ``training_demo.md``: a short table, shown on the documentation site.

Run ``python -m benchmarks.training_demo`` (about half a minute on 2 CPU cores, most of it
importing the frameworks); ``--steps 3 --size 8`` is the smoke test's tiny version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = 3
HIDDEN = 8
FRAMEWORKS = ("torch", "jax", "keras")
RESULTS = Path(__file__).resolve().parent / "results"


def loss_parts() -> tuple[str, ...]:
    """The registered loss(es) the demo trains with, summed."""
    from lossfns import registry

    names = {spec.name for spec in registry.LOSSES}
    return ("dice_ce_loss",) if "dice_ce_loss" in names else ("dice_loss", "categorical_crossentropy")


def make_data(samples: int, size: int, seed: int = 0):
    """Images ``[N, H, W, 1]`` and one-hot labels ``[N, H, W, 3]``: a bright disk (class 1)
    and a dimmer square (class 2) at random places on a dark background, plus noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    labels = np.zeros((samples, size, size), dtype=np.int64)
    for n in range(samples):
        cy, cx = rng.uniform(size * 0.25, size * 0.75, 2)
        radius = rng.uniform(size * 0.12, size * 0.25)
        top, left = rng.integers(0, size - size // 4, 2)
        labels[n, top:top + size // 4, left:left + size // 4] = 2
        labels[n][(rows - cy) ** 2 + (cols - cx) ** 2 <= radius ** 2] = 1
    images = np.choose(labels, [0.0, 1.0, 0.5]) + rng.normal(0.0, 0.3, labels.shape)
    one_hot = np.eye(CLASSES)[labels]
    return images[..., None].astype(np.float64), one_hot


def initial_weights(seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(kernel [kh, kw, in, out], bias [out]), ...]`` for the three convolutions."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 3, 1, HIDDEN), (3, 3, HIDDEN, HIDDEN), (1, 1, HIDDEN, CLASSES)]
    layers = []
    for shape in shapes:
        fan_in = shape[0] * shape[1] * shape[2]
        layers.append((rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape), rng.normal(0.0, 0.1, shape[-1])))
    return layers


# --------------------------------------------------------------------------- frameworks


def train_torch(images, labels, weights, *, steps, learning_rate, parts):
    import torch

    from lossfns.adapters import get

    torch.manual_seed(0)
    layers = []
    for kernel, bias in weights:
        conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0], padding="same",
                               dtype=torch.float64)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))  # [out, in, kh, kw]
            conv.bias.copy_(torch.from_numpy(bias))
        layers.append(conv)
    model = torch.nn.Sequential(layers[0], torch.nn.Tanh(), layers[1], torch.nn.Tanh(), layers[2])
    losses = [get("torch", name)(from_logits=True, reduction="none") for name in parts]
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())          # [N, 1, H, W]
    y = torch.from_numpy(labels.transpose(0, 3, 1, 2).copy())          # [N, C, H, W], one-hot
    curve = []
    for _ in range(steps):
        logits = model(x)
        loss = sum(fn(logits, y) for fn in losses).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(loss.item())
    return curve


def train_jax(images, labels, weights, *, steps, learning_rate, parts):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from lossfns.adapters import get

    losses = [get("jax", name) for name in parts]

    def forward(params, x):
        for index, (kernel, bias) in enumerate(params):
            x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
            if index < len(params) - 1:
                x = jnp.tanh(x)
        return x

    def objective(params, x, y):
        logits = forward(params, x)
        return sum(fn(logits, y, from_logits=True) for fn in losses).mean()

    @jax.jit
    def step(params, x, y):
        value, grads = jax.value_and_grad(objective)(params, x, y)
        return value, jax.tree_util.tree_map(lambda p, g: p - learning_rate * g, params, grads)

    params = [(jnp.asarray(k), jnp.asarray(b)) for k, b in weights]
    x, y = jnp.asarray(images), jnp.asarray(labels)
    curve = []
    for _ in range(steps):
        value, params = step(params, x, y)
        curve.append(float(value))
    return curve


def train_keras(images, labels, weights, *, steps, learning_rate, parts):
    import keras

    keras.utils.set_random_seed(0)
    # Keras' loss tracker (the value fit reports) uses floatx: float32 would round the curve.
    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        return _fit_keras(keras, images, labels, weights, steps=steps, learning_rate=learning_rate, parts=parts)
    finally:
        keras.config.set_floatx(floatx)


def _fit_keras(keras, images, labels, weights, *, steps, learning_rate, parts):
    from lossfns.adapters import get

    losses = [get("keras", name)(from_logits=True, reduction=None, dtype="float64") for name in parts]

    def loss(y_true, y_pred):
        return sum(fn(y_true, y_pred) for fn in losses)  # per sample; Keras takes the batch mean

    inputs = keras.Input(images.shape[1:], dtype="float64")
    x = inputs
    convolutions = []
    for index, (kernel, _) in enumerate(weights):
        activation = "tanh" if index < len(weights) - 1 else None
        conv = keras.layers.Conv2D(kernel.shape[3], kernel.shape[0], padding="same",
                                   activation=activation, dtype="float64")
        x = conv(x)
        convolutions.append(conv)
    model = keras.Model(inputs, x)
    for conv, (kernel, bias) in zip(convolutions, weights):
        conv.set_weights([kernel, bias])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss=loss)
    # One full batch per epoch: each epoch's reported loss is the loss before its update.
    history = model.fit(images, labels, batch_size=len(images), epochs=steps, shuffle=False, verbose=0)
    return [float(v) for v in history.history["loss"]]


TRAINERS = {"torch": train_torch, "jax": train_jax, "keras": train_keras}


# --------------------------------------------------------------------------- report


def largest_relative_difference(curves: dict[str, list[float]]) -> float:
    reference = np.asarray(curves["torch"] if "torch" in curves else next(iter(curves.values())))
    return max(float(np.max(np.abs(np.asarray(c) - reference) / np.abs(reference))) for c in curves.values())


def plot(curves, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = np.asarray(curves.get("torch", next(iter(curves.values()))))
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3), dpi=90, constrained_layout=True)
    styles = {"torch": ("-", 5), "jax": ("--", 3), "keras": (":", 2)}
    for name, curve in curves.items():
        style, width = styles.get(name, ("-", 1))
        steps = np.arange(1, len(curve) + 1)
        left.plot(steps, curve, style, linewidth=width, label=name)
        if name != "torch":
            gap = np.abs(np.asarray(curve) - reference) / np.abs(reference)
            right.semilogy(steps, np.maximum(gap, 1e-17), style, linewidth=2, label=f"{name} vs torch")
    left.set(xlabel="step", ylabel="training loss", title=title)
    right.set(xlabel="step", ylabel="relative difference", title="difference from PyTorch (float64)")
    left.legend(frameon=False)
    right.legend(frameon=False)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {name} | {curve[0]:.6f} | {curve[-1]:.6f} | {result['seconds'][name]:.1f} |"
        for name, curve in result["curves"].items()
    )
    return (
        f"Loss: `{' + '.join(result['loss'])}` (from logits, mean over the batch); "
        f"{result['samples']} images of {result['size']}×{result['size']}, {result['steps']} steps "
        f"of gradient descent (learning rate {result['learning_rate']}), float64. "
        f"Largest relative difference between the curves: **{result['largest_relative_difference']:.1e}**.\n\n"
        "| framework | first loss | last loss | seconds (incl. compilation) |\n| --- | --- | --- | --- |\n"
        f"{rows}\n"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--size", type=int, default=24, help="image height and width")
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    images, labels = make_data(args.samples, args.size)
    weights = initial_weights()
    parts = loss_parts()
    curves, seconds = {}, {}
    for name in args.frameworks.split(","):
        start = time.perf_counter()
        curves[name] = TRAINERS[name](images, labels, weights, steps=args.steps,
                                      learning_rate=args.learning_rate, parts=parts)
        seconds[name] = time.perf_counter() - start
    result = {
        "loss": list(parts), "steps": args.steps, "samples": args.samples, "size": args.size,
        "learning_rate": args.learning_rate, "curves": curves, "seconds": seconds,
        "largest_relative_difference": largest_relative_difference(curves),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "training_demo.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out_dir / "training_demo.md").write_text(markdown(result))
    plot(curves, args.out_dir / "training_demo.png", " + ".join(parts))
    print(f"loss {' + '.join(parts)}: " + ", ".join(f"{n} {c[0]:.6f} -> {c[-1]:.6f}" for n, c in curves.items()))
    print(f"largest relative difference between the curves: {result['largest_relative_difference']:.2e}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
