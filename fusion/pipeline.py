"""The whole run, staged as the pipeline diagram reads: load_data → prepare → sample → project.

`run` computes everything in memory and returns a `Result`; `run_to_dir` writes it. Writing
happens only after every stage succeeded, into a temporary sibling folder whose files are
then moved into place, `_SUCCESS` last: a run that fails leaves no `_SUCCESS`, and bad input
leaves no new file at all.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from fusion.config import Config, config_hash, load_config
from fusion.data.prepared import Prepared
from fusion.diagnostics import (
    THRESHOLDS,
    convergence_gate,
    diagnose,
)
from fusion.adequacy import FIT_FILES, AdequacySettings, ExtraVariance, predictive_pits, thin_draws
from fusion.errors import DataWarning, InputError
from fusion.figures import FIGURE_FILES, draw_figures, import_plotting
from fusion.inference.parameters import PARAMS
from fusion.io import SUCCESS, input_digests, mark_success, sha256_file, write_csv, write_json
from fusion.tracefile import write_trace

if TYPE_CHECKING:
    from fusion.worker import RunWorker

__all__ = [
    "Result",
    "likelihood_inputs",
    "likelihood_setup",
    "calibrated_weights",
    "calibrate_members",
    "run",
    "run_to_dir",
    "save_weights",
    "save_metadata",
    "write_outputs",
    "OUTPUT_FILES",
    "library_versions",
    "sha256_file",
]

OUTPUT_FILES: tuple[str, ...] = (
    "weights.csv",
    "projection.csv",
    "summary.json",
    *FIGURE_FILES,
    *FIT_FILES,
    "run_metadata.json",
    "trace.nc",
)
_LIBRARIES = (
    "fusion", "numpy", "scipy", "pandas", "xarray", "pymc", "pytensor", "arviz", "arviz-base",
    "arviz-stats", "arviz-plots", "nutpie", "numba", "netCDF4", "matplotlib", "pydantic", "PyYAML",
)  # fmt: skip


@dataclass
class Result:
    """Everything one run produced; `metadata` entries override the generated provenance."""

    config: Config
    prepared: Prepared
    trace: xr.DataTree
    weights: pd.DataFrame  # member_id, posterior_mean, posterior_sd, point_estimate, point_estimate_loglik
    diagnostics: dict[str, Any]
    convergence_failures: dict[str, dict[str, Any]]
    projection: xr.Dataset | None = None
    summary: dict[str, Any] | None = None
    input_files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: fit.json's record and residuals.png's bytes (fusion.adequacy), started as soon as the draws exist
    fit: Callable[[], tuple[dict[str, Any], bytes]] | None = field(default=None, repr=False)

    @property
    def converged(self) -> bool:
        return not self.convergence_failures


def _weights_table(prepared: Prepared, trace: xr.DataTree) -> pd.DataFrame:
    from fusion.inference.plugin import plug_in_weights

    w = trace["posterior"]["w"].sel(member=list(prepared.member_ids))
    point, loglik = plug_in_weights(prepared, trace)
    return pd.DataFrame(
        {
            "member_id": list(prepared.member_ids),
            "posterior_mean": w.mean(("chain", "draw")).values.astype(np.float64),
            "posterior_sd": w.std(("chain", "draw")).values.astype(np.float64),
            "point_estimate": np.asarray(point, dtype=np.float64),
            "point_estimate_loglik": np.asarray(loglik, dtype=np.float64),
        }
    )


def run(
    cfg: Config,
    *,
    prepared: Prepared | None = None,
    with_projection: bool = True,
    progressbar: bool = True,
    worker: RunWorker | None = None,
    chunk_rows: int | None = None,
    scheduler: str | None = None,
    sle: xr.DataArray | None = None,
    calibrator: Callable[..., Any] | None = None,
) -> Result:
    """Run the pipeline for `cfg`; pass `prepared` to skip reading the observations and ensemble.

    Projection inputs are checked before sampling, so a missing `runNN.nc` fails in seconds,
    not after the sampler. Failing convergence figures warn (`ConvergenceWarning`) and are
    kept in `Result.convergence_failures`; they do not stop the run. With a projection, the
    modules writing will need are imported while the chains sample.

    Parameters
    ----------
    cfg : Config
        The run's configuration.
    prepared : Prepared, optional
        Prepared arrays to sample instead of reading the inputs.
    with_projection : bool, default True
        Read the volume files and project the SLE.
    progressbar : bool, default True
        Show the sampler's progress bar.
    worker : RunWorker, optional
        `fusion run`'s second process, which draws the figures.
    chunk_rows : int, optional
        How `prepare` runs: by blocks of rows (the same bits).
    scheduler : str, optional
        How `prepare` runs: on a dask cluster at this address (the same bits).
    sle : xarray.DataArray, optional
        Every member's SLE (`member_sle`'s result) when the caller has it, instead of reading the
        projection files (a perfect-model script holding members out).
    calibrator : callable, optional
        What chooses the member temperature (default `fusion.inference.calibration.calibrate`;
        the harness plants a defective one through it).

    Returns
    -------
    Result
        The prepared arrays, the trace, the projection, its summary and the run's metadata.
    """
    from fusion.inference.sampling import sample, warm_sampler
    from fusion.projection import member_sle, project, projection_files, projection_summary

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    input_files: list[Path] = [cfg.source] if cfg.source is not None else []
    inputs: dict[str, Any] | None = None

    # 1. load_data → prepare
    if prepared is None:
        from fusion.data.load import load_data
        from fusion.data.prepare import prepare

        data = load_data(cfg, lazy=True)  # fields read by blocks of rows: memory bounded by `memory.budget_gb`
        input_files += list(data.input_files)
        inputs = {"crs": data.crs, "products": data.provenance()}  # run_metadata.json "inputs"
        prepared = prepare(cfg, data, chunk_rows=chunk_rows, scheduler=scheduler, progress=progressbar)
    timings["prepare_s"] = time.perf_counter() - clock
    # the correlation estimate starts first (in the worker: the form's density may wait for it)
    correlated = _start_correlation(cfg, prepared, with_projection, worker)
    if worker is not None and with_projection:
        worker.begin_figures(prepared.availability)

    # 2. projection inputs exist for every member (fail before the expensive step), unless given
    if with_projection:
        spec = cfg.projection
        for folder, key in (
            (spec.historical_dir, "projection.historical_dir"),
            (spec.forward_dir, "projection.forward_dir"),
        ) if sle is None else ():
            input_files += list(projection_files(
                folder, prepared.member_ids, key, storage_options=spec.storage_options, cache_dir=cfg.cache.dir
            ).values())
        if sle is None:
            sle = member_sle(cfg, prepared.member_ids)  # reads and validates every volume file now
        else:
            sle = sle.sel(member=list(prepared.member_ids))

    # 3. the likelihood form (effective's n_eff and blocks' squares need the correlation first;
    #    otherwise it is estimated while the chains sample), then sample and per-member w and
    #    logL_* from the draws (on the form's points: the blocks' means under `blocks`). The
    #    sampler's compiled parts load first: under `effective` this process would otherwise
    #    idle while the worker estimates the correlation.
    clock = time.perf_counter()
    warm_sampler(cfg)
    form, settings, correlated = _likelihood_settings(cfg, prepared, with_projection, worker, correlated)
    timings["likelihood_s"] = time.perf_counter() - clock
    if worker is not None and with_projection and "streams" in correlated:  # the correlation is known:
        correlated["record"] = _likelihood_record(form, settings, prepared, correlated)  # variogram.png now
        worker.begin_likelihood_figures({"likelihood": correlated["record"]}, names=("variogram.png",))
    # work that needs no draws runs while the chains sample (nutpie's threads leave the GIL free):
    # Matplotlib's import for figures drawn in this process (`trace.nc` needs none: `write_trace`)
    # and a correlation estimate not yet made. (summary.json's `sensitivity` needs no draws either,
    # but beside the chains and the worker's imports on two cores it slowed all three: measured
    # 0.58 s there against 0.23 s after the member weights, and the chains 0.2 s slower.)
    work: list[Callable[[], object]] = [import_plotting] if with_projection and worker is None else []
    if correlated.get("pending"):
        work.append(correlated.pop("pending"))
    # as soon as the draws exist, the worker starts on the convergence diagnostics (ArviZ's
    # statistics are loaded there) and the posterior predictive check (fit.json, residuals.png,
    # from thinned draws), while this process computes every draw's member weights
    sampled = correlated.get("sampled", prepared)
    started: dict[str, Any] = {}

    def on_draws(draws: xr.DataTree) -> Any:
        started["diagnosed"] = _start_diagnostics(cfg, draws, worker)
        members = settings
        if with_projection and (calibration := _calibrate(cfg, sampled, draws, settings, sle, calibrator)) is not None:
            started["calibration"] = calibration
            started["record"] = _start_calibration(calibration, sle, sampled, worker)
            members = replace(settings, member_temperature=calibration.temperature)
        if with_projection:  # the noise model's own weights (λ = 1) and the calibrated ones (fusion.adequacy)
            started["fit"] = _start_fit(
                cfg, prepared, draws["posterior"].to_dataset(), worker,
                lambda theta: _thinned_weights(sampled, theta, settings),
                None if members is settings else (lambda theta: _thinned_weights(sampled, theta, members)),
            )  # fmt: skip
        return members

    clock = time.perf_counter()
    trace = sample(
        cfg, sampled, progressbar=progressbar, settings=settings,
        while_sampling=(lambda: [job() for job in work]) if work else None, on_draws=on_draws,
    )
    timings["sample_s"] = time.perf_counter() - clock

    # 4. diagnostics and the convergence gate (started from the draws, `on_draws`; collected below)
    diagnosed = started["diagnosed"]

    # 5. weights: posterior w and the prototype's plug-in estimate
    weights = _weights_table(prepared, trace)

    # 6. project
    projection = summary = None
    if with_projection:
        clock = time.perf_counter()
        projection = project(cfg, trace, prepared.member_ids, sle=sle)
        summary = {**projection_summary(projection), "method": cfg.inference.method}
        calibration = started.get("calibration")
        record = None if calibration is None else _calibration_record(cfg, calibration, started["record"])
        timings["project_s"] = time.perf_counter() - clock
        summary.update(_likelihood_outputs(
            cfg, prepared, form, settings, correlated, sle, worker, timings, calibration=record,
        ))  # fmt: skip
    diagnostics, failures = diagnosed()
    # 7. the trace as ArviZ's schema has it, with its provenance
    from fusion.tracefile import complete_trace

    trace = complete_trace(trace, cfg, prepared, input_files)
    return Result(
        config=cfg, prepared=prepared, trace=trace, weights=weights, diagnostics=diagnostics,
        convergence_failures=failures, projection=projection, summary=summary,
        input_files=input_files, timings=timings, fit=started.get("fit"),
        metadata={} if inputs is None else {"inputs": inputs},
    )


def _calibrate(
    cfg: Config, sampled: Prepared, draws: xr.DataTree, settings: Any, sle: xr.DataArray | None,
    calibrator: Callable[..., Any] | None = None,
) -> Any:
    """The member temperature of `likelihood.calibration` (a `Calibration`), or None where the run
    has none: `compat: prototype`, `calibration: off`, no projection to calibrate on. The inner
    perfect-model test runs at the posterior mean θ on the points the form weighs members on."""
    post = draws["posterior"]
    theta = np.array([float(post[p].mean()) for p in PARAMS])
    return calibrate_members(cfg, sampled, theta, settings, sle, calibrator)


def calibrate_members(
    cfg: Config, sampled: Prepared, theta: np.ndarray, settings: Any, sle: xr.DataArray | None,
    calibrator: Callable[..., Any] | None = None,
) -> Any:
    """`likelihood.calibration`'s member temperatures at θ (PARAMS order; `fusion run` takes the
    posterior mean), a `fusion.inference.calibration.Calibration`, or None where the run has none."""
    choice = cfg.likelihood.calibration
    if cfg.compat == "prototype" or choice == "off" or sle is None:
        return None
    from fusion.inference.calibration import calibrate, member_contrasts, noise_draws

    contrasts = member_contrasts(sampled, theta, settings, seed=cfg.inference.seed, draws=noise_draws(sampled.n_members))
    values = np.asarray(sle.sel(member=list(sampled.member_ids)).values, dtype=np.float64)
    spec = cfg.projection
    fixed = None if choice == "perfect_model" else float(choice)
    return (calibrator or calibrate)(
        contrasts, values, sampled.member_ids, spec.lower_q, spec.upper_q, fixed=fixed
    )


def _start_calibration(
    calibration: Any, sle: xr.DataArray, sampled: Prepared, worker: RunWorker | None
) -> Callable[[], dict[str, Any]]:
    """summary.json's `calibration` with the inner test's CRPS (`calibration_record`), started in
    `worker` if given (ArviZ's statistics live there; this process never imports them; it draws
    `perfect_model.png` from the record at once), else computed when first asked."""
    values = np.asarray(sle.sel(member=list(sampled.member_ids)).values, dtype=np.float64)
    if worker is not None:
        return worker.start_calibration(calibration, values)
    from fusion.inference.calibration import calibration_record

    return functools.partial(calibration_record, calibration, values)


def calibrated_weights(
    cfg: Config, sampled: Prepared, trace: xr.DataTree, settings: Any, sle: xr.DataArray | None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """w (D, M) of θ rows (D, 4) at the member temperature `fusion run` calibrates for these draws
    (`likelihood.calibration`), or None where the run has none: the weights of the predictive
    users get, which the harness's `adequacy` judges at block level (`fusion.adequacy`)."""
    calibration = _calibrate(cfg, sampled, trace, settings, sle)
    if calibration is None:
        return None
    members = replace(settings, member_temperature=calibration.temperature)
    return lambda theta: _thinned_weights(sampled, theta, members)


def _calibration_record(
    cfg: Config, calibration: Any, record: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """summary.json's `calibration` (`_start_calibration`); a run without a confident
    temperature says so in one line naming what it used."""
    if calibration.message is not None:
        warnings.warn(f"{cfg.source}: likelihood.calibration: {calibration.message}", DataWarning, stacklevel=3)
    return record()


def _start_diagnostics(
    cfg: Config, trace: xr.DataTree, worker: RunWorker | None
) -> Callable[[], tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    """The function giving (diagnostics, convergence failures) of the free parameters (`w` is a
    function of them), computed in `worker` if given. Laplace: the optimiser's figures and PSIS
    k̂, and no gate (a mode that does not exist has already raised)."""
    if cfg.inference.method == "laplace":
        from fusion.inference.laplace import laplace_diagnostics

        found = laplace_diagnostics(trace)
        return lambda: (found, {})
    pending = worker.start_diagnose(trace, PARAMS) if worker is not None else functools.partial(diagnose, trace, PARAMS)

    def gate() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        diagnostics = pending()
        return diagnostics, convergence_gate(diagnostics, warn=True)

    return gate


def _start_correlation(
    cfg: Config, prepared: Prepared, with_projection: bool, worker: RunWorker | None = None
) -> dict[str, Any]:
    """The correlation box: `collect` (waits for the worker's estimate), `pending` (a job for
    this process, while the chains sample) or nothing when no output needs the correlation."""
    from fusion.inference.likelihood import NEEDS_CORRELATION, effective_form, stream_correlations

    box: dict[str, Any] = {}
    needed = effective_form(cfg) in NEEDS_CORRELATION
    if not (needed or (with_projection and cfg.likelihood.sensitivity and cfg.compat == "fixed")):
        return box

    def keep(job: Callable[[], Any]) -> Callable[[], None]:
        def run_job() -> None:
            try:
                box["streams"] = job()
            except ValueError as exc:
                box["error"] = str(exc).splitlines()[0]

        return run_job

    length, seed = cfg.likelihood.correlation_length, cfg.inference.seed
    if worker is None:  # GSTools in this process (a library call, not `fusion run`)
        box["pending"] = keep(functools.partial(stream_correlations, prepared, length, seed=seed))
    else:  # started at once in the worker, so GSTools and SciPy's `stats` stay out of this process
        box["collect"] = keep(worker.correlate(prepared, length, seed))
    return box


def _likelihood_settings(
    cfg: Config,
    prepared: Prepared,
    with_projection: bool,
    worker: RunWorker | None = None,
    box: dict[str, Any] | None = None,
) -> tuple[str, Any, dict[str, Any]]:
    """(form, NoiseSettings, correlation box) of `likelihood.form`; the box (from
    `_start_correlation`) holds `streams` once the correlation is known, `sampled` (the points
    the form samples) and `blocks` under `blocks`, or a job still `pending`/to `collect`."""
    from fusion.inference.likelihood import NEEDS_CORRELATION, effective_form, form_inputs
    from fusion.inference.noise import NoiseSettings

    form = effective_form(cfg)
    base = NoiseSettings.from_config(cfg)
    box = _start_correlation(cfg, prepared, with_projection, worker) if box is None else box
    if form in NEEDS_CORRELATION:
        for key in ("pending", "collect"):  # the density needs it now
            if key in box:
                box.pop(key)()
        if "error" in box:
            raise InputError(cfg.source, f"likelihood.form {form}: no correlation estimate ({box['error']})")
    try:
        settings, sampled, blocks = form_inputs(base, form, prepared, box.get("streams"), cfg.likelihood.block_min_valid)
    except ValueError as exc:
        raise InputError(cfg.source, str(exc).splitlines()[0]) from None
    if form == "blocks":
        box.update(sampled=sampled, blocks=blocks)
    return form, settings, box


def likelihood_setup(cfg: Config, prepared: Prepared) -> tuple[str, Any, Prepared, dict[int, Any] | None]:
    """(form, noise settings, the points the form samples, the streams' correlations or None), as
    `run` derives them, the correlation estimated in this process when the form needs it."""
    form, settings, box = _likelihood_settings(cfg, prepared, with_projection=False)
    return form, settings, box.get("sampled", prepared), box.get("streams")


def likelihood_inputs(cfg: Config, prepared: Prepared) -> tuple[Any, Prepared]:
    """The noise settings and the points `likelihood.form` samples (`likelihood_setup`): what the
    harness fits, so its checks judge the form users run, not the one `sampling.sample` assumes
    without settings."""
    _, settings, sampled, _ = likelihood_setup(cfg, prepared)
    return settings, sampled


def _likelihood_record(form: str, settings: Any, prepared: Prepared, box: dict[str, Any]) -> dict[str, Any]:
    """summary.json's `likelihood` from the correlation box (`_start_correlation`), once final."""
    from fusion.inference.likelihood import likelihood_record

    record = likelihood_record(form, settings, prepared, box.get("streams"), box.get("blocks"))
    return record if "error" not in box else {**record, "correlation_error": box["error"]}


def _likelihood_outputs(
    cfg: Config, prepared: Prepared, form: str, settings: Any, box: dict[str, Any], sle: Any,
    worker: RunWorker | None = None, timings: dict[str, float] | None = None, *,
    calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """summary.json's `likelihood`, `calibration` (the record given, drawn as perfect_model.png)
    and (under `compat: fixed`, `likelihood.sensitivity`) `sensitivity` (with the run's form at its
    calibrated temperature as `calibrated`); `worker` starts drawing their figures at once,
    `timings` gets `sensitivity_s`."""
    from fusion.inference.likelihood import sensitivity
    from fusion.inference.noise import NoiseSettings

    clock = time.perf_counter()
    if box.get("pending"):  # the sampler ran no side work (e.g. pymc): estimate now
        box.pop("pending")()
    if box.get("collect"):  # estimated in the worker while the chains sampled
        box.pop("collect")()
    record = box.get("record") or _likelihood_record(form, settings, prepared, box)
    for correlation in (box.get("streams") or {}).values():
        if (message := correlation.bound_warning()) is not None:
            warnings.warn(f"{cfg.source}: {message}", DataWarning, stacklevel=2)
    out: dict[str, Any] = {"likelihood": record}
    if calibration is not None:
        out["calibration"] = calibration
    if cfg.likelihood.sensitivity and cfg.compat == "fixed":
        spec = cfg.projection
        values = np.asarray(sle.sel(member=list(prepared.member_ids)).values, dtype=np.float64)
        out["sensitivity"] = sensitivity(
            prepared, NoiseSettings.from_config(cfg), box.get("streams"), values,
            (spec.lower_q, 0.5, spec.upper_q), min_valid=cfg.likelihood.block_min_valid, seed=cfg.inference.seed,
            formed={"blocks": box["sampled"]} if form == "blocks" else None,  # the run's own block means
            calibrated=None if calibration is None else (form, calibration["temperature"]),  # {stream: λ}
        )  # fmt: skip
    if timings is not None:
        timings["sensitivity_s"] = time.perf_counter() - clock
    if worker is not None:
        worker.begin_likelihood_figures(out)
    return out


def save_weights(result: Result, path: str | Path) -> Path:
    """`weights.csv`: member_id, posterior_mean, posterior_sd, point_estimate, point_estimate_loglik.

    Parameters
    ----------
    result : Result
        `run`'s result.
    path : str or Path
        The CSV to write (atomically).

    Returns
    -------
    Path
        The file written.
    """
    return write_csv(path, result.weights)


@functools.cache
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    """Read once per process: each lookup scans the installed distributions' metadata."""
    out: list[tuple[str, str | None]] = [("python", sys.version.split()[0])]
    for name in _LIBRARIES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def library_versions() -> dict[str, str | None]:
    return dict(_installed_versions())


def _platform() -> dict[str, Any]:
    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
    }


def _metadata(result: Result) -> dict[str, Any]:
    from fusion.tracefile import sampler_name

    cfg, prep, inf = result.config, result.prepared, result.config.inference
    post_attrs = dict(result.trace["posterior"].attrs)
    meta: dict[str, Any] = {
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fusion_version": library_versions().get("fusion"),
        "config": cfg.model_dump(mode="json"),
        "config_hash": config_hash(cfg),
        "config_file": str(cfg.source) if cfg.source is not None else None,
        "compat": cfg.compat,
        "versions": library_versions(),
        "platform": _platform(),
        "input_files": input_digests(result.input_files),
        "seeds": {"inference": inf.seed, "subsample": inf.subsample.seed},
        "method": inf.method,
        "forward_model": {
            "id": result.trace.attrs.get("forward_model_id"),
            "hash": result.trace.attrs.get("forward_model_hash"),
        },
        "sampler": {
            "name": sampler_name(inf),
            "draws": inf.draws,
            "tune": inf.tune,
            "chains": inf.chains,
            "cores": inf.cores,
            "target_accept": inf.target_accept,
            "compile_s": post_attrs.get("fusion_compile_s"),
            "sampling_wall_s": post_attrs.get("fusion_sampling_wall_s"),
        },
        "diagnostics": result.diagnostics,
        "convergence": {
            "passed": result.converged,
            "failures": result.convergence_failures,
            "thresholds": THRESHOLDS.as_dict(),  # ESS floors per chain
        },
        "prepared": {
            "n_points": prep.n_points,
            "n_dhdt": prep.n_dhdt,
            "n_vel": prep.n_vel,
            "n_members": prep.n_members,
            "member_ids": list(prep.member_ids),
            "compat": prep.compat,
            **{k: v for k, v in prep.meta.items()},
        },
        "availability": prep.availability.record if prep.availability is not None else None,
        "calibration": (result.summary or {}).get("calibration"),
        "timings": result.timings,
        "outputs": list(OUTPUT_FILES),
    }
    if result.summary is not None:
        meta["projection"] = {"target_year": cfg.projection.target_year, "summary": result.summary}
    meta.update(result.metadata)
    if "inputs" in meta:  # each product file with its SHA-256, as `input_files` has it
        digests = meta["input_files"]
        meta["inputs"]["products"] = [{**e, "sha256": digests.get(e["file"])} for e in meta["inputs"]["products"]]
    return meta


def save_metadata(result: Result, path: str | Path) -> Path:
    """`run_metadata.json`: resolved config and hash, versions, platform, input SHA-256s, seeds,
    sampler, diagnostics and convergence gate; `result.metadata` is merged last.

    Parameters
    ----------
    result : Result
        `run`'s result.
    path : str or Path
        The JSON file to write (atomically, strict JSON).

    Returns
    -------
    Path
        The file written.
    """
    return write_json(path, _metadata(result))


def write_outputs(result: Result, out_dir: str | Path, *, worker: RunWorker | None = None) -> Path:
    """Write every output into `out_dir`, via a temporary sibling folder, then `_SUCCESS`.

    The figures are drawn by `worker` if given (`fusion run`'s second process, while this one
    writes the other files), else here.
    """
    if result.projection is None or result.summary is None:
        raise ValueError("the result has no projection; run with with_projection=True to write a run folder")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stale = out / SUCCESS
    if stale.exists():
        stale.unlink()  # from here on the folder is not a complete run until we finish
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the results from other users
    figures_written: Callable[[], None] | None = None
    try:
        if worker is not None:
            figures_written = worker.draw_figures(
                result.projection, result.summary, result.prepared.availability, tmp
            )
        else:
            draw_figures(result.projection, result.summary, result.prepared.availability, tmp)
        save_weights(result, tmp / "weights.csv")
        proj = result.projection
        write_csv(
            tmp / "projection.csv",
            pd.DataFrame(
                {
                    "member_id": [str(m) for m in proj["member"].values],
                    "sle_mm": proj["sle_mm"].values.astype(np.float64),
                    "weight": proj["weight"].values.astype(np.float64),
                }
            ),
        )
        write_json(tmp / "summary.json", result.summary)
        save_metadata(result, tmp / "run_metadata.json")
        write_trace(result.trace, tmp / "trace.nc")
        if figures_written is not None:
            figures_written()
        _write_fit(result, tmp)
        if not out.exists():
            mark_success(tmp)
            os.rename(tmp, out)
            return out
        for name in OUTPUT_FILES:
            os.replace(tmp / name, out / name)
        mark_success(out)
        return out
    finally:
        if figures_written is not None:
            with contextlib.suppress(Exception):  # already raised, or raising: never leave the
                figures_written()  # worker writing into a folder that is being removed
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_fit(result: Result, folder: Path) -> None:
    """fit.json and residuals.png (computed now for a result made without them)."""
    from fusion.figures.adequacy import write_fit_outputs

    fit = result.fit or _start_fit(result.config, result.prepared, result.trace["posterior"].to_dataset(), None)
    record, png = fit()
    write_fit_outputs(record, png, (result.summary or {}).get("likelihood"), folder)


def _start_fit(
    cfg: Config,
    prepared: Prepared,
    posterior: xr.Dataset,
    worker: RunWorker | None,
    weights: Callable[[np.ndarray], np.ndarray] | None = None,
    predictive: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Callable[[], tuple[dict[str, Any], bytes]]:
    """Start fit.json's record and residuals.png (fusion.adequacy) from thinned draws, in `worker`
    if given (else when first asked); returns the function that gives them. `weights`: w of
    thinned θ rows, when `posterior` has no `w` yet (`adequacy.thin_draws`); `predictive`: the
    calibrated w of the same rows (the predictive's block-level test and coverage).

    With a worker, the predictive's PITs (`predictive_pits`, 0.2 s on the benchmark case) are
    computed here first: after the draws the worker's queue (the check, then the figures) is the
    run's critical path, and this process would otherwise wait for it with a core idle, while the
    worker meanwhile draws `perfect_model.png` (`_start_calibration`)."""
    from fusion.inference.noise import NoiseSettings

    theta, w = thin_draws(posterior, AdequacySettings().pit_draws, prepared.member_ids, weights)
    w_predictive = None if predictive is None else predictive(theta)
    extra = ExtraVariance.of(NoiseSettings.from_config(cfg))
    args = (prepared, theta, w, extra, cfg.inference.seed, w_predictive)
    if worker is not None:
        return worker.fit_outputs(*args, predictive_pits(prepared, theta, w, extra, w_predictive))
    from fusion.figures.adequacy import fit_outputs

    return functools.partial(fit_outputs, *args)


def _thinned_weights(sampled: Prepared, theta: np.ndarray, settings: Any) -> np.ndarray:
    """w (D, M) of θ rows (D, 4), as `sample` then computes it for every draw (`member_logliks`)."""
    from fusion.inference.posterior import member_logliks

    return member_logliks(sampled, {p: theta[:, j] for j, p in enumerate(PARAMS)}, settings)["w"]


def run_to_dir(
    config: str | Path | Config,
    out_dir: str | Path | None = None,
    *,
    progressbar: bool = True,
    worker: RunWorker | None = None,
    chunk_rows: int | None = None,
    scheduler: str | None = None,
) -> Path:
    """`fusion run`: load the config (a path, or one loaded already), run, and write the run
    folder (default `output.dir`); `worker`, `chunk_rows`, `scheduler`: see `run`."""
    cfg = config if isinstance(config, Config) else load_config(config)
    out = Path(out_dir) if out_dir is not None else cfg.output.dir
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    stale = out / SUCCESS
    if stale.exists():
        stale.unlink()  # a failed rerun must not leave the previous run's stamp behind
    result = run(cfg, progressbar=progressbar, worker=worker, chunk_rows=chunk_rows, scheduler=scheduler)
    return write_outputs(result, out, worker=worker)
