"""FUSION: weight an ice-sheet ensemble against satellite observations and project sea level.

Pipeline: `load_data → prepare → sample → project` (see DESIGN.md). Heavy modules (PyMC,
plotting) load on first use, so `fusion prepare` and `fusion weights` start fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from fusion.config import Config, load_config
from fusion.data.load import load_data
from fusion.data.prepare import prepare
from fusion.data.prepared import Prepared
from fusion.errors import ConvergenceWarning, InputError
from fusion.inference.plugin import plug_in_weights

__all__ = [
    "Config",
    "ConvergenceWarning",
    "InputError",
    "Prepared",
    "Result",
    "load_config",
    "load_data",
    "plot_projection",
    "plug_in_weights",
    "prepare",
    "project",
    "projection_summary",
    "run",
    "sample",
    "diagnose",
    "gate",
    "Thresholds",
    "save_metadata",
    "save_weights",
    "weight_stability_across_seeds",
]

_LAZY = {
    "sample": "fusion.inference.sampling",
    "project": "fusion.projection",
    "projection_summary": "fusion.projection",
    "plot_projection": "fusion.projection",
    "diagnose": "fusion.diagnostics",
    "gate": "fusion.diagnostics",
    "Thresholds": "fusion.diagnostics",
    "weight_stability_across_seeds": "fusion.diagnostics",
    "Result": "fusion.pipeline",
    "run": "fusion.pipeline",
    "save_weights": "fusion.pipeline",
    "save_metadata": "fusion.pipeline",
}

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fusion' has no attribute {name!r}")
