"""FUSION: weight an ice-sheet ensemble against satellite observations and project sea level.

Pipeline: `load_data → prepare → sample → project` (see DESIGN.md). Every name below loads its
module on first use, so `import fusion` (and `fusion --help`, `fusion --version`) costs almost
nothing and each command imports only what it needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from fusion.errors import ConvergenceWarning, InputError

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
    "sampler_diagnostics",
    "diagnose",
    "gate",
    "Thresholds",
    "save_metadata",
    "save_weights",
    "weight_stability",
    "weight_stability_across_seeds",
]

_LAZY = {
    "Config": "fusion.config",
    "load_config": "fusion.config",
    "load_data": "fusion.data.load",
    "prepare": "fusion.data.prepare",
    "Prepared": "fusion.data.prepared",
    "plug_in_weights": "fusion.inference.plugin",
    "sample": "fusion.inference.sampling",
    "project": "fusion.projection",
    "projection_summary": "fusion.projection",
    "plot_projection": "fusion.figures.projection",
    "diagnose": "fusion.diagnostics",
    "sampler_diagnostics": "fusion.diagnostics",
    "gate": "fusion.diagnostics",
    "Thresholds": "fusion.diagnostics",
    "weight_stability": "fusion.diagnostics",
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
