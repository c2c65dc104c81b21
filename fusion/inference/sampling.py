"""Draw the noise posterior with PyMC's NUTS or nutpie, seeded from the config.

`pymc` samples the PyMC model of `build_model`. `nutpie` samples the same log-density through
`FusedDensity` (held to the PyMC model at 1e-9 by the tests), handed to nutpie as a C callback:
no PyTensor graph to compile with Numba on every run (seconds), no GIL per gradient, and a
gradient several times cheaper. Both return an `xarray.DataTree` with `posterior` (the four
scalars, then `w` and `logL_*` per member computed from the draws) and `sample_stats`
(`diverging`, `energy`, ...).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from fusion.inference.fused_density import FusedDensity
from fusion.inference.fused_kernel import c_callbacks as _c_callbacks
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA
from fusion.inference.posterior import add_member_deterministics, warm_member_logliks
from fusion.inference.pymc_model import build_model

if TYPE_CHECKING:
    import pymc as pm

    from fusion.config import Config, Inference
    from fusion.data.prepared import Prepared

__all__ = [
    "sample", "sample_model", "SAMPLERS", "arrow_draws", "import_nutpie", "fused_nutpie_model", "run_nutpie",
    "warm_sampler",
]

SAMPLERS: frozenset[str] = frozenset({"pymc", "nutpie"})


def sample(
    cfg: Config,
    prepared: Prepared,
    *,
    progressbar: bool = True,
    while_sampling: Callable[[], object] | None = None,
    settings: NoiseSettings | None = None,
    on_draws: Callable[[xr.DataTree], object] | None = None,
) -> xr.DataTree:
    """Sample the vectorised model for `prepared` (or, with `method: laplace`, draw from the Gaussian
    at its mode); the same config gives the same bits.

    Parameters
    ----------
    cfg : Config
        The run's configuration (`inference`, `likelihood`, `compat`).
    prepared : Prepared
        The prepared arrays.
    progressbar : bool, default True
        Show the sampler's progress bar.
    while_sampling : callable, optional
        Work that needs no draws (imports, checks); with nutpie it runs while the chains sample on
        their own threads, and an exception from it cancels the sampler.
    settings : NoiseSettings, optional
        The model's settings, when the caller has derived them already.
    on_draws : callable, optional
        Receives the trace of the four scalars (`posterior`, `sample_stats`) as soon as it exists,
        before the member quantities are computed from the draws (NUTS; under Laplace, after);
        it may return the settings of those member quantities (the run's calibrated temperature
        needs the draws: `fusion.inference.calibration`), which then replace `settings` for them.

    Returns
    -------
    xarray.DataTree
        The trace in ArviZ's schema: `posterior` (the noise parameters, `w`, `logL_*`),
        `sample_stats`, `observed_data`, `constant_data`.
    """
    if cfg.inference.method == "laplace":
        # deferred for import cost only (scipy.optimize, ~0.2 s the sampler routes never need);
        # laplace does not import this module (tests/test_imports.py checks deferred imports too)
        from fusion.inference.laplace import sample_laplace

        if while_sampling is not None:
            while_sampling()
        trace = sample_laplace(cfg, prepared, settings=settings)
        if on_draws is not None and (members := on_draws(trace)) is not None and members != settings:
            trace = add_member_deterministics(trace, prepared, members)
        return trace
    settings = settings or NoiseSettings.from_config(cfg)
    inference = cfg.inference.model_copy(update={"mass_matrix": cfg.inference.adaptation(cfg.compat)})
    if cfg.inference.sampler == "nutpie":
        trace = _sample_fused_nutpie(
            FusedDensity(prepared, settings), inference, progressbar=progressbar, while_sampling=while_sampling
        )
    else:
        if while_sampling is not None:
            while_sampling()
        trace = sample_model(build_model(prepared, settings), inference, progressbar=progressbar)
    if on_draws is not None and (members := on_draws(trace)) is not None:
        settings = members
    trace = add_member_deterministics(trace, prepared, settings)
    trace["posterior"].attrs.update(
        fusion_method="nuts",
        fusion_compat=prepared.compat,
        fusion_member_ids=",".join(prepared.member_ids),
    )
    return trace


def warm_sampler(cfg: Config) -> None:
    """Load now what sampling `cfg` will: nutpie, the fused density's callbacks and the member
    log-likelihoods' kernel from Numba's cache, ArviZ's converter (about 0.6 s of CPU). `fusion
    run` calls it while the second process estimates the correlation, a wait in which this
    process would otherwise idle; elsewhere it only moves that work earlier."""
    if cfg.inference.method != "laplace" and cfg.inference.sampler == "nutpie":
        import_nutpie()
        _c_callbacks()
        import arviz_base  # noqa: F401 - `_datatree`
    warm_member_logliks()


def _pymc_cores(inference: Inference) -> int:
    """`cores: null` means every CPU this process may use (PyMC alone would assume half are
    hyperthreads and, on two CPUs, run the chains one after another)."""
    if inference.cores is not None:
        return inference.cores
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(inference.chains, usable))


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
                text = np.array(["" if v is None else str(v) for v in values.ravel()]).reshape(values.shape)
                ds[name] = da.copy(data=text)
    return ds


def _initial_point(seed: int) -> np.ndarray:
    """Log of each prior scale, jittered by U(−1, 1) on the log scale (as PyMC jitters its start)."""
    rng = np.random.default_rng(seed)
    return np.log(np.array([PRIOR_SIGMA[p] for p in PARAMS])) + rng.uniform(-1.0, 1.0, len(PARAMS))


def fused_nutpie_model(density: FusedDensity):
    """A nutpie model whose log-density is a C callback: chains run without the GIL.

    The callbacks are built once per process (`c_callbacks`, cached on disk by Numba); a new
    density only hands them another data buffer. `fusion run` and every harness fit (SBC,
    coverage, stability) sample through this one function.
    """
    import_nutpie()
    from nutpie.compile_pymc import CompiledPyMCModel

    c_logp, c_expand = _c_callbacks()
    names = list(PARAMS)
    return CompiledPyMCModel(
        dims={},
        compiled_logp_func=c_logp,
        compiled_expand_func=c_expand,
        initial_point_func=_initial_point,
        shared_data={},
        shared_var_keys={},
        user_data=density.packed(),  # nutpie hands `user_data.ctypes.data` to the callbacks, keeps it alive
        n_expanded=len(names),
        shape_info=(names, [slice(i, i + 1) for i in range(len(names))], [() for _ in names]),
        logp_func=None,
        expand_func=None,
        _n_dim=len(names),
        _shapes={name: () for name in names},
        _coords={},
    )


def _nutpie_pyfunc_model(density: FusedDensity):
    """The same density through nutpie's public Python-callback interface (slower: holds the GIL)."""
    import_nutpie()
    from nutpie.compiled_pyfunc import from_pyfunc

    def make_logp_fn():
        def logp(x: np.ndarray, **_: object) -> tuple[float, np.ndarray]:
            return density.logp_grad(x)

        return logp

    def make_expand_fn(seed1: int, seed2: int, chain: int):
        def expand(x: np.ndarray, **_: object) -> dict[str, np.ndarray]:
            theta = np.exp(x)
            return {name: np.asarray(theta[i]) for i, name in enumerate(PARAMS)}

        return expand

    return from_pyfunc(
        ndim=len(PARAMS),
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * len(PARAMS),
        expanded_shapes=[()] * len(PARAMS),
        expanded_names=list(PARAMS),
        make_initial_point_fn=_initial_point,
    )


def _sample_fused_nutpie(
    density: FusedDensity,
    inference: Inference,
    *,
    progressbar: bool,
    route: str = "cfunc",
    while_sampling: Callable[[], object] | None = None,
) -> xr.DataTree:
    """nutpie on the fused density; log θ is the unconstrained space, as in PyMC.

    `route` "cfunc" (default) hands nutpie a C callback; if this nutpie's internals do not take
    it, the public Python-callback route is used instead and `fusion_density` says so.
    """
    start = time.perf_counter()
    compiled, used = None, "fused-pyfunc"
    if route == "cfunc":
        try:
            compiled, used = fused_nutpie_model(density), "fused-cfunc"
        except (ImportError, TypeError, AttributeError):
            compiled = None
    if compiled is None:
        compiled = _nutpie_pyfunc_model(density)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    raw = _run_nutpie(compiled, inference, progressbar, while_sampling, raw=True)
    wall = time.perf_counter() - start
    return _finish(_datatree(*arrow_draws(raw)), inference, compile_s, wall, density=used)


def import_nutpie() -> ModuleType:
    """nutpie, without importing ArviZ's umbrella package `arviz` yet.

    `nutpie.sample` imports `arviz` at load only to convert a finished trace, and `arviz` loads
    arviz_stats, arviz_plots and with it `matplotlib.pyplot`: about 1 s, measured with
    `-X importtime`, most of a short run. FUSION converts nutpie's raw trace itself
    (`arrow_draws`), so until nutpie is loaded `arviz` is a stand-in module whose first
    attribute access imports the real package (PEP 562 `__getattr__`) and hands the attribute
    over; later `import arviz` statements get the real package. (The standard library's
    `LazyLoader` does not help here: the import statement itself reads `__spec__`, which
    makes it load at once.)
    """
    if "nutpie" not in sys.modules and "arviz" not in sys.modules:
        stand_in = ModuleType("arviz", "Loads the real `arviz` on first use (fusion.inference.sampling).")

        def load_on_use(name: str) -> object:
            if name.startswith("__"):  # module introspection (`inspect.getmodule`) is not a use
                raise AttributeError(name)
            if sys.modules.get("arviz") is stand_in:
                del sys.modules["arviz"]
            return getattr(importlib.import_module("arviz"), name)

        stand_in.__getattr__ = load_on_use  # type: ignore[method-assign]
        sys.modules["arviz"] = stand_in
    import nutpie

    return nutpie


def arrow_draws(raw: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(posterior, sample_stats) of a raw nutpie trace as (chain, draw) arrays, warm-up dropped.

    The scalar columns, as nutpie's own conversion keeps them: the list-valued ones (gradients,
    mass matrices, divergence positions) are empty unless nutpie was asked to store them, and
    FUSION never asks. A chain shorter than the others (a cancelled run) is an error, never a
    silently truncated trace.
    """
    import pyarrow as pa

    draw_batches, stat_batches = raw.get_arrow_trace()
    posterior: dict[str, list[np.ndarray]] = {}
    stats: dict[str, list[np.ndarray]] = {}
    for draws, stat in zip(draw_batches, stat_batches, strict=True):
        keep = ~np.asarray(pa.array(stat.column("tuning")).to_numpy(zero_copy_only=False), dtype=bool)
        for batch, out in ((draws, posterior), (stat, stats)):
            for name in batch.column_names:
                column = pa.array(batch.column(name))
                if name in ("chain", "draw") or pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                    continue  # chain and draw are the dimensions' labels, not statistics
                if column.null_count and pa.types.is_integer(column.type):
                    column = column.fill_null(0)  # as nutpie's own conversion leaves them
                out.setdefault(name, []).append(column.to_numpy(zero_copy_only=False)[keep])
    lengths = {len(c) for columns in (*posterior.values(), *stats.values()) for c in columns}
    if len(lengths) > 1:
        raise RuntimeError(f"nutpie returned chains of different lengths {sorted(lengths)}")
    return (
        {name: np.stack(chains) for name, chains in posterior.items()},
        {name: np.stack(chains) for name, chains in stats.items()},
    )


def _datatree(posterior: dict[str, np.ndarray], stats: dict[str, np.ndarray]) -> xr.DataTree:
    from arviz_base import from_dict

    return from_dict(
        {"posterior": posterior, "sample_stats": stats},
        attrs={"sample_stats": {"inference_library": "nutpie", "inference_library_version": _version("nutpie")}},
    )


def _version(distribution: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(distribution)


def _run_nutpie(
    compiled: object,
    inference: Inference,
    progressbar: bool,
    while_sampling: Callable[[], object] | None = None,
    *,
    raw: bool = False,
) -> Any:
    """`run_nutpie` with the config's sampler settings."""
    return run_nutpie(
        compiled,
        draws=inference.draws,
        tune=inference.tune,
        chains=inference.chains,
        seed=inference.seed,
        target_accept=inference.target_accept,
        cores=inference.cores,
        adaptation=inference.mass_matrix or "diag",
        progressbar=progressbar,
        raw=raw,
        while_sampling=while_sampling,
    )


def run_nutpie(
    compiled: object,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    target_accept: float,
    cores: int | None = None,
    adaptation: str = "diag",
    progressbar: bool = False,
    raw: bool = False,
    while_sampling: Callable[[], object] | None = None,
) -> Any:
    """One place for the settings every nutpie run samples with (`fusion run`, every nutpie route,
    every harness fit), so they cannot drift apart.

    The chains run on nutpie's own threads without the GIL, so `while_sampling` overlaps them.
    Any exception (Ctrl-C included) cancels the chains: a partial trace is never returned.
    `raw` returns nutpie's own trace object (read it with `arrow_draws`) instead of a DataTree.
    """
    nutpie = import_nutpie()
    sampler = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        target_accept=target_accept,
        adaptation=adaptation,
        save_warmup=False,
        progress_bar=progressbar,
        blocking=False,
        return_raw_trace=raw,
        **({} if cores is None else {"cores": cores}),
    )
    try:
        if while_sampling is not None:
            while_sampling()
        return sampler.wait()
    except BaseException:
        sampler.cancel()
        raise


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
        import nutpie  # the PyMC route keeps nutpie's own conversion, `arviz` and all

        compiled = nutpie.compile_pymc_model(model)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        raw = _run_nutpie(compiled, inference, progressbar)
    else:
        import pymc as pm  # only this route needs PyMC: `fusion run` with nutpie never imports it

        raw = pm.sample(
            draws=inference.draws,
            tune=inference.tune,
            chains=inference.chains,
            cores=_pymc_cores(inference),
            random_seed=inference.seed,
            nuts_sampler="pymc",
            nuts={"target_accept": inference.target_accept},
            progressbar=progressbar,
            compute_convergence_checks=False,
            model=model,
        )
    missing = [p for p in PARAMS if p in model.named_vars and p not in raw["posterior"].data_vars]
    if missing:
        raise RuntimeError(f"sampler returned no draws for {missing}")
    return _finish(raw, inference, compile_s, time.perf_counter() - start, density="pytensor")


def _finish(
    raw: xr.DataTree, inference: Inference, compile_s: float, wall: float, density: str
) -> xr.DataTree:
    trace = xr.DataTree.from_dict(
        {
            name: _storable(raw[name].to_dataset())
            for name in ("posterior", "sample_stats")
            if name in raw.children
        }
    )
    trace["posterior"].attrs.update(
        fusion_sampler=inference.sampler,
        fusion_density=density,
        fusion_seed=inference.seed,
        **({"fusion_mass_matrix": inference.mass_matrix or "diag"} if inference.sampler == "nutpie" else {}),
        fusion_compile_s=compile_s,
        fusion_sampling_wall_s=wall,
    )
    return trace
