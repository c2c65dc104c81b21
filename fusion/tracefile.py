"""The run's `trace.nc` as ArviZ's schema has it, and provenance a trace file carries alone.

Groups: `posterior` and `sample_stats` (from the sampler, or the Laplace draws),
`observed_data` (`y_obs` on `point`) and `constant_data` (`sigma_obs`, `speed`, `stream` on
`point`; `F` on `member` × `point`): everything the likelihood read, so the trace can be
re-weighted or checked without the inputs. The root carries the fusion version, config hash,
method, model hash and input SHA-256s, so a trace file found on its own says where it came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from fusion.io import input_digests, sha256_file, sha256_manifest

if TYPE_CHECKING:
    from fusion.config import Config
    from fusion.data.prepared import Prepared

__all__ = ["FORWARD_MODEL_ID", "model_source_hash", "sampler_name", "trace_provenance", "complete_trace", "write_trace"]

#: What the posterior is a posterior of: the noise model of DESIGN.md as coded in these modules.
FORWARD_MODEL_ID = "fusion.noise_model"
_MODEL_MODULES = (
    "fusion.inference.noise",
    "fusion.inference.pymc_model",
    "fusion.inference.fused_kernel",
    "fusion.inference.fused_density",
    "fusion.inference.posterior",
)


def model_source_hash() -> str:
    """SHA-256 over the source of the modules that define the log-density and the member weights."""
    import importlib

    return sha256_manifest(
        (name, sha256_file(Path(importlib.import_module(name).__file__ or ""))) for name in _MODEL_MODULES
    )


def sampler_name(inference: Any) -> str:
    """What drew the posterior: the NUTS sampler, or the optimiser behind the Laplace Gaussian."""
    if inference.method == "laplace":
        from fusion.inference.laplace import OPTIMIZER

        return OPTIMIZER
    return str(inference.sampler)


def trace_provenance(cfg: Config, input_files: Iterable[Path]) -> dict[str, Any]:
    """Root attributes of `trace.nc` (NetCDF attributes are flat: the SHA-256 map is JSON text)."""
    from fusion import __version__
    from fusion.config import config_hash

    inputs = input_digests(input_files)
    return {
        "fusion_version": __version__,
        "config_hash": config_hash(cfg),
        "method": cfg.inference.method,
        "sampler": sampler_name(cfg.inference),
        "seed": int(cfg.inference.seed),
        "forward_model_id": FORWARD_MODEL_ID,
        "forward_model_hash": model_source_hash(),
        "input_sha256": json.dumps(inputs, sort_keys=True),
    }


def complete_trace(
    trace: xr.DataTree, cfg: Config, prepared: Prepared, input_files: Iterable[Path]
) -> xr.DataTree:
    """A copy of `trace` with `observed_data`, `constant_data` and provenance on the root."""
    members = list(prepared.member_ids)
    point = np.arange(prepared.n_points)
    observed = xr.Dataset({"y_obs": (("point",), prepared.y_obs)}, coords={"point": point})
    constant = xr.Dataset(
        {
            "sigma_obs": (("point",), prepared.sigma_obs),
            "speed": (("point",), np.asarray(prepared.speed)),
            "stream": (("point",), np.asarray(prepared.stream, dtype=np.int8)),
            "F": (("member", "point"), prepared.F),
        },
        coords={"point": point, "member": members},
        attrs={"stream_labels": "0 thickness (dhdt), 1 velocity (dvdt)", "compat": prepared.compat},
    )
    groups = {name: trace[name].to_dataset() for name in trace.children}
    groups.update(observed_data=observed, constant_data=constant)
    out = xr.DataTree.from_dict(groups)
    out.attrs.update(trace.attrs)
    out.attrs.update(trace_provenance(cfg, input_files))
    return out


def write_trace(trace: xr.DataTree, path: str | Path) -> None:
    """`trace.to_netcdf(path)`, without importing dask's `distributed` (0.3 s of CPU) to learn
    that no distributed client runs.

    xarray's NetCDF writer asks dask for the active scheduler; dask answers by importing
    `distributed` and asking it for a client. If `distributed` was never imported in this
    process no client can exist, so for the length of the write that import fails fast instead
    (the answer, "no client", is the one the import would give). A process that imported
    `distributed` (a `scheduler:` run), or that names a scheduler in dask's config (where dask
    would remember the failed import), writes unchanged.
    """
    import contextlib
    import sys

    import dask.config

    if "distributed" in sys.modules or dask.config.get("scheduler", None) is not None:
        trace.to_netcdf(path)
        return
    blocked = ("distributed", "dask.distributed")
    try:
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
        trace.to_netcdf(path)
    finally:
        for name in blocked:
            with contextlib.suppress(KeyError):
                if sys.modules[name] is None:
                    del sys.modules[name]
