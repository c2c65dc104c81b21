"""Draw the noise posterior with PyMC's NUTS or nutpie, seeded from the config.

Both samplers return an `xarray.DataTree` with `posterior` (the four scalars, then `w` and
`logL_*` per member added from the draws) and `sample_stats` (`diverging`, `energy`, ...).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
import xarray as xr

from fusion.inference.model import PARAMS, NoiseSettings, build_model
from fusion.inference.posterior import add_member_deterministics

if TYPE_CHECKING:
    from fusion.config import Config, Inference
    from fusion.data.prepared import Prepared

__all__ = ["sample", "sample_model", "SAMPLERS"]

SAMPLERS: frozenset[str] = frozenset({"pymc", "nutpie"})


def sample(cfg: Config, prepared: Prepared, *, progressbar: bool = True) -> xr.DataTree:
    """Sample the vectorised model for `prepared`; the same config gives the same bits."""
    settings = NoiseSettings.from_config(cfg)
    model = build_model(prepared, settings)
    trace = sample_model(model, cfg.inference, progressbar=progressbar)
    trace = add_member_deterministics(trace, prepared, settings)
    trace["posterior"].attrs.update(
        fusion_compat=prepared.compat,
        fusion_member_ids=",".join(prepared.member_ids),
    )
    return trace


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """Drop object-typed stats that are all None (nutpie's `divergence_message`); stringify the rest.

    NetCDF has no object type, so these would otherwise fail or change type in `trace.nc`.
    """
    for name, da in list(ds.data_vars.items()):
        if da.dtype == object:
            values = da.values
            if all(v is None for v in values.ravel()):
                ds = ds.drop_vars(name)
            else:
                ds[name] = da.copy(data=np.array(["" if v is None else str(v) for v in values.ravel()]).reshape(values.shape))
    return ds


def sample_model(model: pm.Model, inference: Inference, *, progressbar: bool = True) -> xr.DataTree:
    """Run `inference.sampler` on any PyMC model; keeps only `posterior` and `sample_stats`.

    Also used by the benchmark to sample the per-member loop model with identical settings.
    Wall times land in the posterior attrs: `fusion_compile_s` (nutpie only; PyMC compiles
    inside `pm.sample`) and `fusion_sampling_wall_s`.
    """
    if inference.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {inference.sampler!r}; valid: {sorted(SAMPLERS)}")
    compile_s = 0.0
    start = time.perf_counter()
    if inference.sampler == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        kwargs = {} if inference.cores is None else {"cores": inference.cores}
        raw = nutpie.sample(
            compiled,
            draws=inference.draws,
            tune=inference.tune,
            chains=inference.chains,
            seed=inference.seed,
            target_accept=inference.target_accept,
            save_warmup=False,
            progress_bar=progressbar,
            **kwargs,
        )
    else:
        raw = pm.sample(
            draws=inference.draws,
            tune=inference.tune,
            chains=inference.chains,
            cores=inference.cores,
            random_seed=inference.seed,
            nuts_sampler="pymc",
            nuts={"target_accept": inference.target_accept},
            progressbar=progressbar,
            compute_convergence_checks=False,
            model=model,
        )
    wall = time.perf_counter() - start
    trace = xr.DataTree.from_dict(
        {name: _storable(raw[name].to_dataset()) for name in ("posterior", "sample_stats") if name in raw.children}
    )
    missing = [p for p in PARAMS if p in model.named_vars and p not in trace["posterior"].data_vars]
    if missing:
        raise RuntimeError(f"sampler returned no draws for {missing}")
    trace["posterior"].attrs.update(
        fusion_sampler=inference.sampler,
        fusion_seed=inference.seed,
        fusion_compile_s=compile_s,
        fusion_sampling_wall_s=wall,
    )
    return trace
