"""Half and single precision on a 512×512×128 volume against the float64 result (SPEC §2, §9).

A naive float32 accumulator stalls at 2**24 and float16 overflows at 65504; a volume of
512·512·128 = 33.5M elements with two classes exposes both. The probabilities are
multiples of 1/256, exact in float16, bfloat16 and float32 alike, so every precision sees
the same values and one float64 NumPy result per loss is the reference for all of them.

Tolerances (SPEC §9): float32 inputs within 1e-4, float16/bfloat16 within 1e-2, relative.
Half-precision inputs are accumulated in float32 and the loss is returned in float32 (§2).
"""

from __future__ import annotations

import numpy as np
import pytest

import lossfns

torch = pytest.importorskip("torch")

VOLUME = (1, 512, 512, 128)  # batch and spatial axes; the class axis (2 classes) is last
#: (loss, torch input dtypes) — three losses, each on both half types; float32 on two.
CASES = (
    ("dice_loss", ("float32", "float16", "bfloat16")),
    ("categorical_crossentropy", ("float32", "float16", "bfloat16")),
    ("asymmetric_unified_focal_loss", ("float16", "bfloat16")),
)
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 1e-2}


@pytest.fixture(scope="module")
def volume():
    """Sparse int64 labels ``[1, 512, 512, 128]`` (20 % foreground) and float32 probabilities
    ``[1, 512, 512, 128, 2]`` whose values ``k/256`` are exact in every precision tested."""
    rng = np.random.default_rng(2024)
    foreground = rng.integers(1, 256, size=VOLUME, dtype=np.uint8).astype(np.float32) / np.float32(256)
    y_pred = np.stack([np.float32(1) - foreground, foreground], axis=-1)
    del foreground
    labels = (rng.random(VOLUME, dtype=np.float32) < 0.2).astype(np.int64)
    return labels, y_pred


@pytest.mark.parametrize("name, dtypes", CASES, ids=[c[0] for c in CASES])
def test_low_precision_inputs_match_the_float64_result(volume, name, dtypes):
    labels, y_pred = volume
    loss = getattr(lossfns, name)
    values = np.arange(0, 257, dtype=np.float32) / np.float32(256)  # every value y_pred holds
    for dtype in dtypes:
        rounded = torch.from_numpy(values).to(getattr(torch, dtype)).to(torch.float32).numpy()
        assert np.array_equal(rounded, values), f"k/256 is not exact in {dtype}"
    expected = loss(labels, y_pred.astype(np.float64))
    assert expected.dtype == np.float64 and np.isfinite(expected).all()

    target = torch.from_numpy(labels)
    for dtype in dtypes:
        result = loss(target, torch.from_numpy(y_pred).to(getattr(torch, dtype)))
        assert result.dtype == torch.float32, dtype
        got = result.double().numpy()
        np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=0, err_msg=dtype)
