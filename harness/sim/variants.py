"""The density SBC, coverage and stability fit: FUSION's own, and its planted-bug variants.

Every harness fit samples `fusion.inference.fused_density.FusedDensity` built from a `Prepared` of the
replicate's data, through the C callbacks and the nutpie settings `fusion run` uses
(`fusion.inference.sampling`): there is no second implementation of the density here, so a
defect in the production density (`squared_residuals`, `sigma_obs_squared`, the merging in
`stream_blocks`, the packing, the kernel) is in every fit SBC judges.

The forms are `NoiseSettings.tempered`: the generative form counts each point once, the
tempered (prototype) form weights stream s by α_s / N_s. Planted-bug variants change only the
density's inputs (prior scales; a stream's constants through
`FusedDensity.with_stream_constants`), never the kernel or the sampler: the same compiled
callbacks fit every variant, once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.fused_density import FusedDensity
from fusion.inference.fused_kernel import c_callbacks
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA


@dataclass(frozen=True)
class ModelVariant:
    """A density to fit: prior scales and which likelihood term (if any) a planted bug drops."""

    name: str = "correct"
    prior_sigma: tuple[float, ...] = tuple(PRIOR_SIGMA[p] for p in PARAMS)
    drop: Literal["none", "thick_stream", "lognorm"] = "none"

    def density(self, prepared: Prepared, settings: NoiseSettings) -> FusedDensity:
        """The production density of `prepared`, with this variant's change to its inputs."""
        density = FusedDensity(prepared, settings, prior_sigma=dict(zip(PARAMS, self.prior_sigma)))
        if self.drop == "thick_stream":  # the thickness stream's log-likelihood weighted 0
            density = density.with_stream_constants(THICK, scale=0.0)
        elif self.drop == "lognorm":  # M = 0 drops −½ M Σ log(2πσ²) and its gradient term
            for stream in (THICK, VEL):
                density = density.with_stream_constants(stream, n_members=0.0)
        return density


CORRECT = ModelVariant()
#: Variance passed where a standard deviation belongs (σ² instead of σ): every prior too narrow.
WRONG_PRIOR_SCALE = ModelVariant("wrong_prior_scale", tuple(s**2 for s in CORRECT.prior_sigma))
#: The thickness stream's log-likelihood left out of the sum.
DROPPED_THICK_TERM = ModelVariant("dropped_thick_term", drop="thick_stream")
#: The Gaussian normaliser −½·log(2πσ²) left out (only the quadratic term kept).
DROPPED_LOGNORM_TERM = ModelVariant("dropped_lognorm_term", drop="lognorm")


def compile_count() -> int:
    """How many times this process has built the density's C callbacks (tests prove: once,
    whatever the variant and however many replicates)."""
    return c_callbacks.cache_info().misses
