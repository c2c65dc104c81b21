"""The noise model's free parameters and their prior scales (DESIGN.md).

Apart from the densities (`fusion.inference.pymc_model`, `fusion.inference.fused_density`) so
that code which only names the parameters (the diagnostics, tables, `fusion run`'s figure
worker) does not load Numba or PyMC with them.
"""

from __future__ import annotations

__all__ = ["PARAMS", "PRIOR_SIGMA"]

#: The four free parameters, in the order every table lists them.
PARAMS: tuple[str, ...] = ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")
#: HalfNormal prior scales (DESIGN.md).
PRIOR_SIGMA: dict[str, float] = {
    "sigma_base_thick": 0.5,
    "sigma_base_vel": 0.6,
    "beta_thick": 0.1,
    "beta_vel": 0.1,
}
