"""Fitting the noise model thousands of times fast: what SBC, coverage and stability share.

Every fit samples FUSION's own density (`fusion.inference.fused_density.FusedDensity`, built from a
`Prepared` of the replicate's data) through the nutpie path `fusion run` uses. `variants` holds
its planted-bug variants (changed inputs, same kernel); `designs` the per-point inputs, the
generative form and a replicate's `Prepared`; `fit` one NUTS fit and its convergence figures;
`parallel` the map over local processes or dask; `store` the replicate folders a run resumes
from by a hash of the spec and the code.
"""

from harness.sim.designs import (
    VELOCITY_INFLATION,
    Design,
    design_from_prepared,
    draw_prior,
    loglik_draws,
    prior_sd,
    prior_variance,
    replicate_rng,
    sbc_design,
    sigma_tot2,
    simulate_residuals,
)
from harness.sim.fit import SAMPLER, Fit, convergence, fit
from harness.sim.parallel import MapStats, local_pool, run_tasks, shutdown_pools, worker_info
from harness.sim.store import code_digest, load_replicates, run_replicates, save_replicate, spec_hash
from harness.sim.variants import (
    CORRECT,
    DROPPED_LOGNORM_TERM,
    DROPPED_THICK_TERM,
    PARAMS,
    PRIOR_SIGMA,
    WRONG_PRIOR_SCALE,
    ModelVariant,
    compile_count,
)

__all__ = [
    "CORRECT",
    "DROPPED_LOGNORM_TERM",
    "DROPPED_THICK_TERM",
    "PARAMS",
    "PRIOR_SIGMA",
    "SAMPLER",
    "VELOCITY_INFLATION",
    "WRONG_PRIOR_SCALE",
    "Design",
    "Fit",
    "MapStats",
    "ModelVariant",
    "code_digest",
    "compile_count",
    "convergence",
    "design_from_prepared",
    "draw_prior",
    "fit",
    "load_replicates",
    "local_pool",
    "loglik_draws",
    "prior_sd",
    "prior_variance",
    "replicate_rng",
    "run_replicates",
    "run_tasks",
    "save_replicate",
    "sbc_design",
    "shutdown_pools",
    "sigma_tot2",
    "simulate_residuals",
    "spec_hash",
    "worker_info",
]
