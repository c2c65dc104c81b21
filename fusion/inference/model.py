"""The hierarchical noise model of DESIGN.md: where each of its parts lives, under one name.

- `fusion.inference.noise`: the settings (`NoiseSettings`) and the per-stream sufficient
  statistics every density reads (`stream_blocks`, `squared_residuals`, `sigma_obs_squared`);
  NumPy only.
- `fusion.inference.pymc_model`: the two PyMC forms, `build_model` (what `sampler: pymc`
  samples) and `build_loop_model` (the prototype's construction).
- `fusion.inference.fused_kernel`: the Numba kernel of the log-density and its gradient, and
  nutpie's C callbacks (`c_callbacks`).
- `fusion.inference.fused_density`: `FusedDensity`, that kernel on a `Prepared`.

These names stay importable from here for the modules that import the model as a whole; a
module that needs one part imports that part (the figure worker must not load Numba, which
importing this module does).
"""

from __future__ import annotations

from fusion.inference.fused_density import FusedDensity
from fusion.inference.fused_kernel import c_callbacks
from fusion.inference.noise import (
    NoiseSettings,
    StreamBlock,
    sigma_obs_squared,
    squared_residuals,
    stream_blocks,
)
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA
from fusion.inference.pymc_model import build_loop_model, build_model

__all__ = [
    "PARAMS",
    "PRIOR_SIGMA",
    "FusedDensity",
    "NoiseSettings",
    "StreamBlock",
    "build_loop_model",
    "build_model",
    "c_callbacks",
    "sigma_obs_squared",
    "squared_residuals",
    "stream_blocks",
]
