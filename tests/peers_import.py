"""Import peers' loss modules without their heavy package ``__init__``.

segmentation-models-pytorch's ``__init__`` imports its model zoo (timm, huggingface_hub, ...),
which the test environment installs without (``pip install --no-deps``); its ``losses``
subpackage needs torch only. Registering an empty parent package lets it import on its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest

SMP = "segmentation_models_pytorch"


def smp_losses():
    """``segmentation_models_pytorch.losses``, or a skip when smp or torch is missing."""
    pytest.importorskip("torch")
    if f"{SMP}.losses" not in sys.modules and SMP not in sys.modules:
        spec = importlib.util.find_spec(SMP)
        if spec is None:
            pytest.skip("segmentation-models-pytorch is not installed (pip install --no-deps)")
        package = types.ModuleType(SMP)
        package.__path__ = list(spec.submodule_search_locations)  # a namespace for the subpackage only
        sys.modules[SMP] = package
    return importlib.import_module(f"{SMP}.losses")
