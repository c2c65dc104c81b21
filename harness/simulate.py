"""The generative form of the noise model, and fitting it thousands of times fast.

SBC and coverage need one fit per simulated dataset. The density touches the data only through
per-point sums over members of squared residuals (DESIGN.md, "The noise model"), so one PyMC
graph with `pm.Data` inputs covers every use here:

    log p(data | θ) = Σ_i c_i · [−½ S2_i / σ²_tot,i(θ) − ½ n_i · log(2π σ²_tot,i(θ))]

with S2_i = Σ_m r_mi² over the n_i members observed at point i. The generative (untempered)
form has c_i = 1; the prototype's tempered form has c_i = α_s / N_s; a held-out point has
n_i = 0 and S2_i = 0. nutpie compiles that graph once per process and per `ModelVariant`, and
every replicate only swaps the arrays (`with_data`), which is what makes 1,000 fits take
seconds instead of hours. Planted-bug variants (a wrong prior scale, a dropped likelihood
term) change the graph, so they compile once each.

Replicates run in parallel on local processes (spawned, each compiles once) or on a
dask.distributed cluster; `run_tasks` hides which.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.model import PARAMS, PRIOR_SIGMA
from fusion.io import SUCCESS, is_complete, mark_success, write_json
from harness.progress import ReplicateBar

__all__ = [
    "CORRECT",
    "DROPPED_LOGNORM_TERM",
    "DROPPED_THICK_TERM",
    "PARAMS",
    "PRIOR_SIGMA",
    "WRONG_PRIOR_SCALE",
    "Design",
    "Fit",
    "ModelVariant",
    "build_model",
    "compile_count",
    "convergence",
    "design_from_prepared",
    "draw_prior",
    "fit",
    "fit_inputs",
    "local_pool",
    "loglik_draws",
    "replicate_rng",
    "run_replicates",
    "run_tasks",
    "sbc_design",
    "shutdown_pools",
    "sigma_tot2",
    "simulate_residuals",
    "spec_hash",
    "tempered_coef",
    "worker_info",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
VELOCITY_INFLATION = 5.0


# --------------------------------------------------------------------------------------------
# Model variants: the correct model and the planted bugs SBC must catch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVariant:
    """A graph to fit: prior scales and which likelihood term (if any) a planted bug drops."""

    name: str = "correct"
    prior_sigma: tuple[float, ...] = tuple(PRIOR_SIGMA[p] for p in PARAMS)
    drop: Literal["none", "thick_stream", "lognorm"] = "none"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.prior_sigma}:{self.drop}"


CORRECT = ModelVariant()
#: Variance passed where a standard deviation belongs (σ² instead of σ): every prior too narrow.
WRONG_PRIOR_SCALE = ModelVariant("wrong_prior_scale", tuple(s**2 for s in CORRECT.prior_sigma))
#: The thickness stream's log-likelihood left out of the sum.
DROPPED_THICK_TERM = ModelVariant("dropped_thick_term", drop="thick_stream")
#: The Gaussian normaliser −½·log(2πσ²) left out (only the quadratic term kept).
DROPPED_LOGNORM_TERM = ModelVariant("dropped_lognorm_term", drop="lognorm")


def build_model(variant: ModelVariant = CORRECT) -> Any:
    """The data-swappable PyMC graph; every per-point input is a `pm.Data` of any length."""
    import pymc as pm
    import pytensor.tensor as pt

    init = np.ones(2)
    with pm.Model() as model:
        s2 = pm.Data("s2", init)
        n_obs = pm.Data("n_obs", init)
        coef = pm.Data("coef", init)
        sigma_obs2 = pm.Data("sigma_obs2", init)
        speed = pm.Data("speed", init * 0)
        is_vel = pm.Data("is_vel", init * 0)
        extra_var = pm.Data("extra_var", init * 0)
        theta = {p: pm.HalfNormal(p, sigma=s) for p, s in zip(PARAMS, variant.prior_sigma)}
        sb2 = theta["sigma_base_thick"] ** 2 * (1.0 - is_vel) + theta["sigma_base_vel"] ** 2 * is_vel
        beta = theta["beta_thick"] * (1.0 - is_vel) + theta["beta_vel"] * is_vel
        var = sigma_obs2 + sb2 * (1.0 + beta * speed) + extra_var
        quad = s2 / var
        lognorm = n_obs * (pt.log(var) + _LOG_2PI)
        if variant.drop == "lognorm":
            per_point = -0.5 * quad
        else:
            per_point = -0.5 * (quad + lognorm)
        if variant.drop == "thick_stream":
            per_point = per_point * is_vel
        pm.Potential("loglik", pt.sum(coef * per_point))
    return model


_COMPILED: dict[str, Any] = {}
_COMPILE_LOCK = threading.Lock()
_COMPILATIONS = 0


def compile_count() -> int:
    """How many graphs this process has compiled (tests prove: one per variant, not per replicate)."""
    return _COMPILATIONS


def _compiled(variant: ModelVariant) -> Any:
    global _COMPILATIONS
    with _COMPILE_LOCK:
        hit = _COMPILED.get(variant.key)
        if hit is None:
            import nutpie

            hit = nutpie.compile_pymc_model(build_model(variant))
            _COMPILED[variant.key] = hit
            _COMPILATIONS += 1
        return hit


# --------------------------------------------------------------------------------------------
# Designs (where the points are) and the generative form
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """Per-point inputs that do not depend on θ: σ_obs², speed, stream label; and M members."""

    sigma_obs2: np.ndarray  # float64 (N,)
    speed: np.ndarray  # float64 (N,)
    stream: np.ndarray  # int8 (N,)
    n_members: int
    inflation: float = VELOCITY_INFLATION
    group: np.ndarray | None = None  # int (N,): points sharing (stream, σ_obs², speed), or None

    @property
    def n_points(self) -> int:
        return int(self.stream.shape[0])

    @property
    def is_vel(self) -> np.ndarray:
        return (self.stream == VEL).astype(np.float64)

    @property
    def extra_var(self) -> np.ndarray:
        return self.is_vel * self.inflation**2


@lru_cache(maxsize=16)
def sbc_design(
    n_thick: int = 100,
    n_vel: int = 100,
    n_members: int = 5,
    seed: int = 20260430,
    levels: tuple[int, int] = (10, 20),
) -> Design:
    """A fixed, seeded design with the magnitudes of real data (thickness σ_obs 0.2–2 m/yr,
    velocity σ_obs 1–5 m/yr, speeds log-uniform 1–3000 m/yr), small enough to fit in milliseconds.

    Points come in `levels` = (thickness, velocity) groups sharing (σ_obs, speed), as gridded
    products with quantised uncertainties do; the fit then sums each group's squared residuals
    first (an exact rewrite, the production model's merging), halving the gradient's cost.
    """
    rng = np.random.default_rng(seed)
    g_t, g_v = (np.arange(n) % k for n, k in ((n_thick, levels[0]), (n_vel, levels[1])))
    so_t = rng.uniform(0.2, 2.0, levels[0])[g_t]
    so_v = rng.uniform(1.0, 5.0, levels[1])[g_v]
    speed_v = np.exp(rng.uniform(0.0, np.log(3000.0), levels[1]))[g_v]
    stream = np.r_[np.full(n_thick, THICK), np.full(n_vel, VEL)].astype(np.int8)
    return Design(
        sigma_obs2=np.r_[so_t, so_v] ** 2,
        speed=np.r_[np.zeros(n_thick), speed_v],
        stream=stream,
        n_members=n_members,
        group=np.r_[g_t, levels[0] + g_v],
    )


def design_from_prepared(prepared: Prepared, inflation: float = VELOCITY_INFLATION) -> Design:
    """The design of a prepared dataset (σ_obs² squared in float32, as the production model)."""
    return Design(  # no grouping: measured uncertainties are continuous
        sigma_obs2=np.square(prepared.sigma_obs).astype(np.float64),
        speed=np.asarray(prepared.speed, dtype=np.float64),
        stream=np.asarray(prepared.stream, dtype=np.int8),
        n_members=prepared.n_members,
        inflation=inflation,
    )


def draw_prior(rng: np.random.Generator, prior_sigma: Sequence[float] = CORRECT.prior_sigma) -> np.ndarray:
    """θ = (σ_base_thick, σ_base_vel, β_thick, β_vel) from the HalfNormal priors."""
    return np.abs(rng.standard_normal(len(PARAMS))) * np.asarray(prior_sigma, dtype=np.float64)


def sigma_tot2(theta: np.ndarray, design: Design) -> np.ndarray:
    """σ²_tot for draws `theta` (..., 4) at every point: (..., N)."""
    theta = np.asarray(theta, dtype=np.float64)
    vel = design.stream == VEL
    sb = np.where(vel, theta[..., 1, None], theta[..., 0, None])
    beta = np.where(vel, theta[..., 3, None], theta[..., 2, None])
    return design.sigma_obs2 + sb**2 * (1.0 + beta * design.speed) + design.extra_var


def simulate_residuals(theta: np.ndarray, design: Design, rng: np.random.Generator) -> np.ndarray:
    """The generative form: r_mi ~ N(0, σ_tot,i(θ)) independently per member and point, (M, N)."""
    sd = np.sqrt(sigma_tot2(theta, design))
    return rng.standard_normal((design.n_members, design.n_points)) * sd


def loglik_draws(theta: np.ndarray, design: Design, s2: np.ndarray, n_obs: np.ndarray) -> np.ndarray:
    """Untempered log-likelihood Σ_i −½[S2_i/σ² + n_i log(2πσ²)] per draw (D,), or for one θ ()."""
    var = sigma_tot2(theta, design)
    return -0.5 * (s2 / var + n_obs * (np.log(var) + _LOG_2PI)).sum(axis=-1)


def tempered_coef(design: Design, n_obs: np.ndarray, alpha: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """c_i = α_s / N_s over the points that enter the fit (n_i > 0), N floored at 1 (DESIGN.md)."""
    used = n_obs > 0
    coef = np.zeros(design.n_points)
    for s, a in zip((THICK, VEL), alpha):
        sel = (design.stream == s) & used
        coef[design.stream == s] = a / max(int(sel.sum()), 1)
    return coef


def fit_inputs(
    design: Design, s2: np.ndarray, n_obs: np.ndarray, coef: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The arrays swapped into the compiled graph for one dataset; `coef=None` is the generative form.

    With `design.group`, points are summed per group first: S2 and n add up, and σ_tot,
    stream and (per stream) c are shared within a group, so the log-density is unchanged.
    """
    inputs = {
        "s2": np.asarray(s2, dtype=np.float64),
        "n_obs": np.asarray(n_obs, dtype=np.float64),
        "coef": np.ones(design.n_points) if coef is None else np.asarray(coef, dtype=np.float64),
        "sigma_obs2": design.sigma_obs2,
        "speed": design.speed,
        "is_vel": design.is_vel,
        "extra_var": design.extra_var,
    }
    if design.group is None:
        return inputs
    _, first, inverse = np.unique(design.group, return_index=True, return_inverse=True)
    out = {k: v[first] for k, v in inputs.items()}
    for k in ("s2", "n_obs"):
        out[k] = np.bincount(inverse.ravel(), weights=inputs[k], minlength=first.size)
    return out


# --------------------------------------------------------------------------------------------
# Fitting and per-fit convergence figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """Post-warmup draws (chains, draws, 4) and the sampler statistics the convergence gate needs."""

    draws: np.ndarray
    diverging: np.ndarray  # (chains, draws) bool
    energy: np.ndarray  # (chains, draws)
    n_steps: np.ndarray  # (chains, draws)
    seconds: float

    @property
    def flat(self) -> np.ndarray:
        return self.draws.reshape(-1, self.draws.shape[-1])


def fit(
    data: dict[str, np.ndarray],
    *,
    variant: ModelVariant = CORRECT,
    draws: int = 250,
    tune: int = 250,
    chains: int = 2,
    cores: int = 1,
    seed: int = 0,
    target_accept: float = 0.8,
    adaptation: str = "diag",
) -> Fit:
    """One NUTS fit of the compiled graph on new data: no recompilation, no ArviZ conversion."""
    import nutpie

    start = time.perf_counter()
    compiled = _compiled(variant)
    known = {var.name for var in compiled.shared_var_keys}  # a planted bug may leave an input unused
    model = compiled.with_data(**{k: v for k, v in data.items() if k in known})
    raw = nutpie.sample(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        progress_bar=False,
        return_raw_trace=True,
        save_warmup=False,
        target_accept=target_accept,
        adaptation=adaptation,
    )
    draw_batches, stat_batches = raw.get_arrow_trace()
    pos, div, energy, steps = [], [], [], []
    for d, s in zip(draw_batches, stat_batches):
        keep = ~s.column("tuning").to_numpy().astype(bool)
        pos.append(np.stack([np.asarray(d.column(p).to_numpy())[keep] for p in PARAMS], axis=-1))
        div.append(np.asarray(s.column("diverging").to_numpy()).astype(bool)[keep])
        energy.append(np.asarray(s.column("energy").to_numpy())[keep])
        steps.append(np.asarray(s.column("n_steps").to_numpy())[keep])
    n = min(len(x) for x in pos)
    return Fit(
        draws=np.stack([x[:n] for x in pos]),
        diverging=np.stack([x[:n] for x in div]),
        energy=np.stack([x[:n] for x in energy]),
        n_steps=np.stack([x[:n] for x in steps]),
        seconds=time.perf_counter() - start,
    )


#: What a replicate stores of `diagnose_draws`: enough for `fusion.diagnostics.gate` and the tables.
_KEPT = (
    "r_hat_max", "r_hat_max_at", "ess_bulk_min", "ess_bulk_min_at", "ess_tail_min", "ess_tail_min_at",
    "ess_bulk_per_chain_min", "ess_tail_per_chain_min", "divergences", "transitions", "e_bfmi_min",
    "e_bfmi_min_chain", "chains",
)


def convergence(quantities: np.ndarray, result: Fit, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The per-fit convergence figures of (Q, chains, draws) quantities, in the vocabulary of
    `fusion.diagnostics` (the release gate's), plus mean leapfrog steps and each bulk ESS."""
    from fusion.diagnostics import diagnose_draws

    names = list(names) if names is not None else [f"q{i}" for i in range(len(quantities))]
    figures = diagnose_draws(dict(zip(names, quantities)), result.diverging, result.energy)
    return {
        **{k: figures[k] for k in _KEPT},
        "mean_steps": float(result.n_steps.mean()),
        "ess_bulk": [float(figures["per_variable"][n]["ess_bulk"][0]) for n in names],
    }


# --------------------------------------------------------------------------------------------
# Seeds, hashes and the parallel map
# --------------------------------------------------------------------------------------------


def replicate_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Replicate `index`'s own generator: the same data whichever worker runs it, and on resume."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the sources a replicate's numbers come from (this harness and the model)."""
    from harness.paths import repo_root

    root = repo_root()  # the folder holding both packages, in a checkout and when installed
    h = hashlib.sha256()
    for rel in _CODE_FILES:
        path = root / rel
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"missing") + b"\0")
    return h.hexdigest()


_CODE_FILES = (
    "harness/simulate.py",
    "harness/sbc.py",
    "harness/calibration.py",
    "harness/stability.py",
    "fusion/inference/model.py",
    "fusion/inference/posterior.py",
    "fusion/data/prepare.py",
    "fusion/data/synthetic.py",
)


def spec_hash(spec: Any) -> str:
    """Hash of a dataclass spec and of the code: a replicate artifact is reused only when both match."""
    blob = json.dumps(asdict(spec), sort_keys=True, default=str, separators=(",", ":")) + code_digest()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class MapStats:
    """What a parallel map did: replicates fitted, compilations per worker process, wall time."""

    fitted: int = 0
    compilations: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    backend: str = "local"
    first_chunk_s: float = 0.0  # start-up: worker processes, imports, compilation, first chunk
    first_chunk_size: int = 0

    @property
    def steady_per_min(self) -> float:
        """Replicates per minute after the first chunk landed (start-up excluded)."""
        rest = self.seconds - self.first_chunk_s
        return 60.0 * (self.fitted - self.first_chunk_size) / rest if rest > 0 else float("nan")

    @property
    def total_compilations(self) -> int:
        return sum(self.compilations.values())


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


def run_tasks(
    task: Callable[[Any, list[int], int], dict[str, Any]],
    spec: Any,
    indices: Sequence[int],
    on_chunk: Callable[[list[dict[str, Any]]], None],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_size: int = 8,
) -> MapStats:
    """Run `task(spec, chunk, cores)` over `indices` in chunks; `on_chunk(results)` as each lands.

    `task` returns `{"results": [...], **worker_info()}`. Backends: a dask cluster when
    `scheduler` is an address; else `workers` spawned local processes (default: one per core,
    each sampling its chains on one core); `workers=0` runs here, chains on parallel threads.
    Results arrive in completion order; the caller persists them, so a kill loses at most the
    chunks in flight.
    """
    stats = MapStats()
    start = time.perf_counter()
    todo = list(indices)
    if not todo:
        return stats
    chunks = _chunks(todo, chunk_size)

    def take(out: dict[str, Any]) -> None:
        stats.compilations[f"{out['host']}:{out['pid']}"] = int(out["compilations"])
        if not stats.fitted:
            stats.first_chunk_s, stats.first_chunk_size = time.perf_counter() - start, len(out["results"])
        stats.fitted += len(out["results"])
        on_chunk(out["results"])

    if scheduler:
        from distributed import Client
        from distributed import as_completed as dask_completed

        stats.backend = f"dask:{scheduler}"
        with Client(scheduler, set_as_default=False) as client:
            futures = client.map(task, [spec] * len(chunks), chunks, [1] * len(chunks), pure=False)
            for fut in dask_completed(futures, loop=client.loop):
                take(fut.result())
    elif workers == 0:
        stats.backend = "in-process"
        for chunk in chunks:
            take(task(spec, chunk, os.cpu_count() or 1))
    else:
        n = workers or os.cpu_count() or 1
        stats.backend = f"local:{n}"
        pool = local_pool(n)
        futures = [pool.submit(task, spec, chunk, 1) for chunk in chunks]
        try:
            for fut in as_completed(futures):
                take(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    stats.seconds = time.perf_counter() - start
    return stats


_POOLS: dict[int, ProcessPoolExecutor] = {}


def local_pool(workers: int) -> ProcessPoolExecutor:
    """A spawned process pool kept for the life of this process.

    Each worker compiles a variant on first use and keeps it, so the SBC forms and the
    coverage regimes that follow reuse the compiled graphs instead of compiling again.
    """
    pool = _POOLS.get(workers)
    if pool is not None and getattr(pool, "_broken", False):  # a worker died (killed, out of memory)
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
    if pool is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        _POOLS[workers] = pool
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def shutdown_pools() -> None:
    """Stop the local worker processes (tests call it to start from cold)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def replicate_dir(folder: Path, index: int) -> Path:
    return Path(folder) / "replicates" / f"r{index:05d}"


def load_replicates(folder: Path, n: int, key: str) -> dict[int, dict[str, Any]]:
    """Finished replicates (stamped `_SUCCESS`) computed under the spec hash `key`."""
    done: dict[int, dict[str, Any]] = {}
    for i in range(n):
        d = replicate_dir(folder, i)
        if is_complete(d):
            try:
                rec = json.loads((d / "result.json").read_text())
            except (OSError, ValueError):
                continue
            if rec.get("spec_hash") == key:
                done[i] = rec
    return done


def save_replicate(folder: Path, rec: dict[str, Any]) -> None:
    """Atomic `result.json`, then `_SUCCESS`: a folder is either complete or ignored on resume."""
    d = replicate_dir(folder, rec["index"])
    (d / SUCCESS).unlink(missing_ok=True)
    write_json(d / "result.json", rec)
    mark_success(d)


def run_replicates(
    task: Callable[[Any, list[int], int], dict[str, Any]],
    spec: Any,
    n: int,
    folder: str | Path,
    *,
    label: str,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_size: int = 8,
    progress: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], MapStats, int]:
    """Resume-or-run `n` replicates of `spec` into `folder`; returns (records in order, stats, reused).

    Each record carries `index` and `spec_hash`; a replicate folder written under another spec
    is refitted, never mixed in.
    """
    folder = Path(folder)
    key = spec_hash(spec)
    write_json(folder / "spec.json", {"hash": key, **asdict(spec)})
    done = load_replicates(folder, n, key)
    reused = len(done)
    todo = [i for i in range(n) if i not in done]
    every = max(1, n // 10)
    start = time.perf_counter()
    bar = ReplicateBar(label, n, done=reused)  # a terminal's bar; silent in CI logs
    progress = bar.wrap(progress)
    if reused:
        progress(f"{label}: resuming, {reused}/{n} replicates already done")
    if todo and scheduler is None and workers != 0 and (workers or os.cpu_count() or 1) not in _POOLS:
        progress(
            f"{label}: starting {workers or os.cpu_count()} local worker processes "
            "(each imports PyMC and compiles once)"
        )

    def on_chunk(results: list[dict[str, Any]]) -> None:
        before = len(done)
        for rec in results:
            rec["spec_hash"] = key  # stamped here: the driver's spec and code are what a resume compares
            save_replicate(folder, rec)
            done[rec["index"]] = rec
        bar.update(len(done))
        if len(done) // every > before // every or len(done) == n:
            rate = (len(done) - reused) / max(time.perf_counter() - start, 1e-9)
            progress(f"{label}: {len(done)}/{n} replicates ({rate:.1f}/s)")

    try:
        stats = run_tasks(
            task, spec, todo, on_chunk, scheduler=scheduler, workers=workers, chunk_size=chunk_size
        )
    finally:
        bar.close()
    return [done[i] for i in range(n)], stats, reused


def worker_info() -> dict[str, Any]:
    """Who ran a chunk: host, pid and how many graphs that process has compiled so far."""
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid(), "compilations": compile_count()}
