"""One figure per registered loss: the loss and its derivative against the predicted
probability of the true class, for a few values of one hyperparameter (as the figures of
Yeung et al. 2022 do).

The setting is one 8×8 image with two classes, a 4×4 foreground square in the middle
(25 % foreground). Every element predicts probability ``p`` for its true class and ``1 − p``
for the other one, so one number ``p`` moves the whole prediction from wrong (0) to right
(1). Each value of ``p`` is one sample of a batch, so one call of the NumPy core gives the
whole curve; the derivative ``dL/dp`` (all elements moving together) is a central
difference in float64.
"""

from __future__ import annotations

import io

import numpy as np

from catalogue import FIGURE_GRIDS

SIZE, SQUARE = 8, slice(2, 6)
P = np.linspace(0.02, 0.98, 97)
STEP = 1e-6
SYMBOLS = {"gamma": "γ", "alpha": "α", "beta": "β", "delta": "δ", "weight": "λ", "epsilon": "ε",
           "focal_gamma": "focal γ", "tversky_gamma": "Tversky γ"}
SETTING = ("One 8×8 image, two classes, a 4×4 foreground square; every element predicts `p` "
           "for its true class. Right: the derivative of the loss with respect to `p` (all "
           "elements together, central differences in float64).")


def labels() -> np.ndarray:
    """The label map ``[batch, 8, 8]`` (integers), the same for every sample."""
    one = np.zeros((SIZE, SIZE), dtype=np.int64)
    one[SQUARE, SQUARE] = 1
    return np.broadcast_to(one, (P.size, SIZE, SIZE)).copy()


def predictions(p: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Probabilities ``[batch, 8, 8, 2]``: ``p`` (one per sample) on the true class."""
    p = p[:, None, None]
    foreground = np.where(target == 1, p, 1.0 - p)
    return np.stack([1.0 - foreground, foreground], axis=-1)


def _arguments(spec, target, p):
    """``(y_true, y_pred)`` as the loss expects them."""
    probs = predictions(p, target)
    if getattr(spec, "logits_only", False):
        probs = np.log(probs) - np.log1p(-probs)  # logits whose sigmoid is probs, channel by channel
    if getattr(spec, "target_kind", "labels") == "distance_maps":
        import lossfns

        return lossfns.signed_distance_maps(target, 2), probs
    return target, probs


def varied(spec):
    """``(name, values)`` of the hyperparameter drawn, or ``(None, [None])``."""
    hyper = {h.name: h for h in spec.hyperparameters}
    for name, grids in FIGURE_GRIDS.items():
        if name not in hyper:
            continue
        for grid in grids:
            try:
                for value in grid:
                    hyper[name].validate(value)
            except (TypeError, ValueError):
                continue
            default = hyper[name].default
            values = list(grid) if default in grid or default is None else sorted({*grid, default})
            return name, values
    return None, [None]


def curves(spec):
    """``{value: (loss, derivative)}`` over :data:`P` for each value of the varied hyperparameter."""
    name, values = varied(spec)
    target = labels()
    out = {}
    for value in values:
        options = {} if name is None else {name: value}

        def loss(p):
            y_true, y_pred = _arguments(spec, target, p)
            return np.asarray(spec.function(y_true, y_pred, **options), dtype=np.float64)

        out[value] = (loss(P), (loss(P + STEP) - loss(P - STEP)) / (2 * STEP))
    return name, out


def _label(name, value, default):
    if name is None:
        return None
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{SYMBOLS.get(name, name)} = {shown}" + (" (default)" if value == default else "")


def render(spec) -> bytes:
    """The figure of ``spec`` as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, data = curves(spec)
    default = spec.defaults.get(name) if name else None
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.1), dpi=96, constrained_layout=True)
    for value, (loss, derivative) in data.items():
        width = 2.4 if value == default else 1.3
        left.plot(P, loss, linewidth=width, label=_label(name, value, default))
        right.plot(P, derivative, linewidth=width)
    left.set(xlabel="p (predicted probability of the true class)", ylabel="loss", title=spec.name)
    right.set(xlabel="p", ylabel="dL/dp", title="derivative")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    if name is not None:
        left.legend(fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def caption(spec) -> str:
    name, values = varied(spec)
    drawn = "" if name is None else f" Curves: `{name}` ∈ {{{', '.join(map(str, values))}}}, the rest at the defaults."
    if getattr(spec, "logits_only", False):
        drawn += " The loss takes logits: each channel gets `log(q / (1 − q))` of its probability `q`."
    if getattr(spec, "target_kind", "labels") == "distance_maps":
        drawn += " Its target is `lossfns.signed_distance_maps` of the label map."
    return SETTING + drawn
