"""One figure per registered loss: the loss and its derivative against the predicted
probability of the true class, for a few values of one hyperparameter (as the figures of
Yeung et al. 2022 do).

The setting is one 8×8 image with two classes, a 4×4 foreground square in the middle
(25 % foreground). Every element predicts probability ``p`` for its true class and ``1 − p``
for the other one, so one number ``p`` moves the whole prediction from wrong (0) to right
(1). Each value of ``p`` is one sample of a batch, so one call of the NumPy core gives the
whole curve; the derivative ``dL/dp`` (all elements moving together) is a central
difference in float64. Where that derivative is the same at every ``p`` (a loss linear in
``p`` here), its panel would only show round-off around a constant, so the figure has the
loss alone and the caption states the slope.

A figure that varies Lovász-Softmax's ``classes`` adds a third class that no element has
(each element gives it half of ``1 − p``): ``"present"`` and ``"all"`` differ only when a
class is absent.

:func:`benchmark_figures` draws the committed benchmark run, one image per case.
"""

from __future__ import annotations

import functools
import io

import numpy as np

from catalogue import FIGURE_GRIDS, FIGURE_NOTES, FIGURE_OVERRIDES

SIZE, SQUARE = 8, slice(2, 6)
P = np.linspace(0.02, 0.98, 97)
STEP = 1e-6
#: Twice the 96 dpi of a standard screen: sharp on high-density displays.
DPI = 192
#: A derivative whose spread over P is below this (relative to its size) is a constant.
FLAT = 1e-7
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


def predictions(p: np.ndarray, target: np.ndarray, absent_class: bool = False) -> np.ndarray:
    """Probabilities ``[batch, 8, 8, 2]``: ``p`` (one per sample) on the true class.

    ``absent_class``: ``[batch, 8, 8, 3]``, the third class labelled nowhere; the two
    classes an element does not have share its ``1 − p``.
    """
    p = p[:, None, None]
    if absent_class:
        rest = (1.0 - p) / 2 + np.zeros(target.shape)
        channels = [np.where(target == c, p, rest) for c in (0, 1)]
        return np.stack([*channels, rest], axis=-1)
    foreground = np.where(target == 1, p, 1.0 - p)
    return np.stack([1.0 - foreground, foreground], axis=-1)


def _absent_class(name) -> bool:
    return name == "classes"


def _arguments(spec, target, p, absent_class=False):
    """``(y_true, y_pred)`` as the loss expects them."""
    probs = predictions(p, target, absent_class)
    if getattr(spec, "logits_only", False):
        probs = np.log(probs) - np.log1p(-probs)  # logits whose sigmoid is probs, channel by channel
    if getattr(spec, "target_kind", "labels") == "distance_maps":
        import lossfns

        return lossfns.signed_distance_maps(target, 2), probs
    if getattr(spec, "target_kind", "labels") == "skeletons":
        import lossfns

        return lossfns.tubed_skeletons(target), probs
    return target, probs


def varied(spec):
    """``(name, values)`` of the hyperparameter drawn, or ``(None, [None])``."""
    hyper = {h.name: h for h in spec.hyperparameters}
    if spec.name in FIGURE_OVERRIDES and FIGURE_OVERRIDES[spec.name][0] in hyper:
        name, values = FIGURE_OVERRIDES[spec.name]
        return name, list(values)
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
    return _curves(spec.name, spec)


@functools.cache
def _curves(_name, spec):
    # Keyed by the loss name as well: the figure and its caption read the same curves.
    name, values = varied(spec)
    target = labels()
    absent = _absent_class(name)
    out = {}
    for value in values:
        options = {} if name is None else {name: value}

        def loss(p, options=options):  # this iteration's options, bound now
            y_true, y_pred = _arguments(spec, target, p, absent)
            required = spec.example_arguments(y_pred.shape[-1])  # the Wasserstein Dice's matrix
            return np.asarray(spec.function(y_true, y_pred, **required, **options), dtype=np.float64)

        out[value] = (loss(P), (loss(P + STEP) - loss(P - STEP)) / (2 * STEP))
    return name, out


def constant_slopes(data) -> dict | None:
    """``{value: slope}`` when every curve's derivative is one number over :data:`P`, else ``None``."""
    slopes = {}
    for value, (_, derivative) in data.items():
        if np.ptp(derivative) > FLAT * max(1.0, float(np.max(np.abs(derivative)))):
            return None
        slopes[value] = float(np.median(derivative))
    return slopes


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
    flat = constant_slopes(data) is not None
    if flat:
        figure, left = plt.subplots(1, 1, figsize=(5.2, 3.1), dpi=DPI, constrained_layout=True)
        axes = (left,)
    else:
        figure, axes = plt.subplots(1, 2, figsize=(8.4, 3.1), dpi=DPI, constrained_layout=True)
        left, right = axes
    for index, (value, (loss, derivative)) in enumerate(data.items()):
        width = 2.4 if value == default else 1.3
        # Dashes tell coinciding curves apart (a value that changes nothing in this setting).
        style = ("-", "--", "-.", ":")[index % 4]
        left.plot(P, loss, linewidth=width, linestyle=style, label=_label(name, value, default))
        if not flat:
            right.plot(P, derivative, linewidth=width, linestyle=style)
    left.set(xlabel="p (predicted probability of the true class)", ylabel="loss", title=spec.name)
    if not flat:
        right.set(xlabel="p", ylabel="dL/dp", title="derivative")
    for axis in axes:
        axis.grid(alpha=0.3)
    if name is not None:
        left.legend(fontsize=8, frameon=False)
    return _png(figure, plt)


def _png(figure, plt) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def caption(spec) -> str:
    name, data = curves(spec)
    values = list(data)
    setting = SETTING
    slopes = constant_slopes(data)
    if slopes is not None:
        setting = setting.split(" Right:", 1)[0]
        if len(slopes) == 1:
            shown = f"{next(iter(slopes.values())):.3g}"
        else:
            shown = ", ".join(f"{slope:.3g} ({value})" for value, slope in slopes.items())
        setting += (f" The loss is linear in `p` in this setting (dL/dp = {shown} at every `p`), "
                    "so no derivative panel is drawn.")
    if _absent_class(name):
        setting = setting.replace("two classes", "three classes, the third labelled nowhere")
        setting += " The two classes an element does not have share its `1 − p`."
    drawn = "" if name is None else f" Curves: `{name}` ∈ {{{', '.join(map(str, values))}}}, the rest at the defaults."
    if name in FIGURE_NOTES:
        drawn += " " + FIGURE_NOTES[name]
    if getattr(spec, "logits_only", False):
        drawn += " The loss takes logits: each channel gets `log(q / (1 − q))` of its probability `q`."
    if getattr(spec, "target_kind", "labels") == "distance_maps":
        drawn += " Its target is `lossfns.signed_distance_maps` of the label map."
    return setting + drawn


# --------------------------------------------------------------------------- benchmarks


def benchmark_cases(report, data) -> list[str]:
    """The cases of a benchmark run, in the report's order."""
    return list(report.Table(data).cases)


def benchmark_figures(report, data) -> dict[str, bytes]:
    """``{case: PNG}``: each contender's time over lossfns' (torch eager), grouped by loss.

    One image per case, each as wide as the page, with the legend under the bars: the
    report's own ``results.png`` puts six panels and their legends in one image, which is
    unreadable at the width of a page.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    table = report.Table(data)
    contenders = [c for c in table.contenders if c not in (report.FLOOR, report.BASE)]
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(contenders)}
    out = {}
    for case in table.cases:
        present = [c for c in contenders if any((case, loss, c) in table.median for loss in table.losses)]
        if not present:
            continue
        # 7.2 in is about the width of the page's text column, so the fonts show at their size.
        figure, axis = plt.subplots(figsize=(7.2, 4.0), dpi=DPI, constrained_layout=True)
        width = 0.8 / max(len(present), 4)
        for i, contender in enumerate(present):
            offset = (i - len(present) / 2 + 0.5) * width
            bars = [(j + offset, table.ratio(case, loss, contender)) for j, loss in enumerate(table.losses)]
            bars = [(x, h) for x, h in bars if h]
            axis.bar([x for x, _ in bars], [h for _, h in bars], width, color=colours[contender],
                     label=contender.replace("_", " "))
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_yscale("log")
        axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        axis.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        axis.set_xticks(range(len(table.losses)), [loss.replace("_", " ") for loss in table.losses])
        axis.set_title(f"{case}: time / lossfns (torch eager); below 1 is faster", fontsize=11)
        axis.grid(axis="y", alpha=0.3)
        figure.legend(loc="outside lower center", ncol=min(4, len(present)), frameon=False, fontsize=10)
        out[case] = _png(figure, plt)
    return out
