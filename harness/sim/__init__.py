"""Fitting the noise model thousands of times fast: what SBC, coverage and stability share.

`variants` holds the data-swappable graph, its planted bugs and the compile cache; `designs`
the per-point inputs and the generative form; `fit` one NUTS fit and its convergence figures;
`parallel` the map over local processes or dask; `store` the replicate folders a run resumes
from by a hash of the spec and the code.
"""

from harness.sim.designs import (
    VELOCITY_INFLATION,
    Design,
    design_from_prepared,
    draw_prior,
    fit_inputs,
    loglik_draws,
    replicate_rng,
    sbc_design,
    sigma_tot2,
    simulate_residuals,
    tempered_coef,
)
from harness.sim.fit import Fit, convergence, fit
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
    build_model,
    compile_count,
)

__all__ = [
    "CORRECT",
    "DROPPED_LOGNORM_TERM",
    "DROPPED_THICK_TERM",
    "PARAMS",
    "PRIOR_SIGMA",
    "VELOCITY_INFLATION",
    "WRONG_PRIOR_SCALE",
    "Design",
    "Fit",
    "MapStats",
    "ModelVariant",
    "build_model",
    "code_digest",
    "compile_count",
    "convergence",
    "design_from_prepared",
    "draw_prior",
    "fit",
    "fit_inputs",
    "load_replicates",
    "local_pool",
    "loglik_draws",
    "replicate_rng",
    "run_replicates",
    "run_tasks",
    "save_replicate",
    "sbc_design",
    "shutdown_pools",
    "sigma_tot2",
    "simulate_residuals",
    "spec_hash",
    "tempered_coef",
    "worker_info",
]
