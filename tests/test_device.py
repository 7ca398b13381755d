"""Every loss keeps its result, and everything it creates, on the inputs' device.

array-api-strict refuses to combine arrays on different devices, so a constant created on
the default device inside a loss is an error here, not a silent host round trip.
"""

from __future__ import annotations

import numpy as np
import pytest

from lossfns import registry

OPTIONS = [
    {},
    {"mask": "mask"},
    {"ignore_index": 0},
    {"batch": True},
    {"from_logits": True},
]


def _arguments(spec, xs, device, options):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(2, 5, 6, 3))
    labels = rng.integers(0, 3, size=(2, 5, 6))
    logits = options.get("from_logits", False) or spec.logits_only
    y_pred = scores if logits else np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    y_true = rng.normal(size=scores.shape) if spec.target_kind == "distance_maps" else labels
    given = {k: v for k, v in options.items() if k != "mask"}
    if "mask" in options:
        given["mask"] = xs.asarray(rng.uniform(size=(2, 5, 6)), device=device)
    if spec.logits_only:
        given.pop("from_logits", None)
    return xs.asarray(y_true, device=device), xs.asarray(y_pred, device=device), given


CASES = [
    pytest.param(spec, options, id=f"{spec.name}-{','.join(options) or 'defaults'}")
    for spec in registry.LOSSES for options in OPTIONS
    if "ignore_index" not in options or "ignore_index" in spec.options  # distance maps have no labels
]


@pytest.mark.parametrize("spec, options", CASES)
def test_the_result_stays_on_a_non_default_device(spec, options, other_device):
    xs, device = other_device
    y_true, y_pred, given = _arguments(spec, xs, device, options)
    value = spec.function(y_true, y_pred, **given, **spec.example_arguments(y_pred.shape[-1]))
    assert value.device == device
    assert np.all(np.isfinite(np.asarray(xs.asarray(value, device=xs.Device("CPU_DEVICE")))))
