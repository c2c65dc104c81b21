"""The perfect-model test on a case's own ensemble: each member in turn plays the truth.

For member k, the pseudo-observations are its modelled rates at the case's kept points plus
noise at the stated σ_obs, correlated per stream as the run itself estimates (the correlation
`effective` uses: exponential, its ℓ and its nugget share; every (stream, interval) block its
own field, drawn by GSTools at the kept cells through `harness.sim.correlated.StreamErrors`).
FUSION's whole procedure then runs on the other members exactly as `fusion run` would
(`fusion.pipeline.run(cfg, prepared=..., sle=...)`: the correlation estimate, the noise fit, the
member temperature it calibrates on the M − 1 members, which never see member k), with the noise
fitted by the Laplace fast path (the harness's `agreement` check holds it to NUTS), and member
k's SLE is scored against the weighted range of the others: inside or not, width, CRPS. The
unweighted ensemble of the same M − 1 members is scored beside it.

Replicates run and resume through `harness.sim.store`, locally or on dask, as SBC's do:
replicate i is member k = i mod M held out under noise draw r = i div M (its pseudo-observations
at noise seed (seed, k, r)), so a batch of whole draws over all members is a range of indices
and the check (`harness.checks.perfect_model`) extends them while its verdict is undecided. Draw
0 is the single draw of the check's first version, bit for bit. The case is read and prepared
once, by the check's own process, which hands the worker processes its prepared points, SLE and
correlations in one file beside the replicates (`write_inputs`): a worker never reads the
case's full grids. `plant` switches the procedure to a defective one: `uncalibrated` (λ = 1, the
form's in-sample weights: today's `effective` before this check) and `in_sample` (the
calibration scores each member among its own candidates, so it always picks the sharpest λ).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PLANTS",
    "PerfectModelSpec",
    "case_inputs",
    "held_out",
    "held_out_chunk",
    "pseudo_noise",
    "replicate_of",
    "stream_lengths",
    "write_inputs",
]

PLANTS: tuple[str, ...] = ("", "uncalibrated", "in_sample")


@dataclass(frozen=True)
class PerfectModelSpec:
    """What the held-out runs are a function of (the resume key hashes it with the code)."""

    config: str  # the case's FUSION config (compat forced to `fixed`)
    config_hash: str
    n_members: int
    seed: int = 0
    plant: str = ""
    inputs: str = ""  # `write_inputs`' file (read by the workers), else each worker reads the case


def _case_config(config: str) -> Any:
    """The case's config as every held-out run reads it: under `compat: fixed` (the calibration's)."""
    from fusion.config import load_config

    return load_config(config).with_updates(compat="fixed")


@functools.lru_cache(maxsize=2)
def case_inputs(config: str) -> tuple[Any, Any, Any, dict[int, Any]]:
    """(cfg, prepared, sle, the run's stream correlations) of a case, once per process."""
    from fusion.data.load import load_data
    from fusion.data.prepare import prepare
    from fusion.inference.likelihood import stream_correlations
    from fusion.projection import member_sle

    cfg = _case_config(config)
    prepared = prepare(cfg, load_data(cfg), progress=False)
    sle = member_sle(cfg, prepared.member_ids)
    correlations = stream_correlations(prepared, cfg.likelihood.correlation_length, seed=cfg.inference.seed)
    return cfg, prepared, sle, correlations


def write_inputs(config: str, folder: str | Path) -> Path:
    """`case_inputs(config)` but the config, as one pickle in `folder` (written atomically), for
    the held-out runs' worker processes (`PerfectModelSpec.inputs`): the prepared points are a few
    MB where the case's grids are hundreds."""
    import pickle

    from fusion.io import write_bytes

    _, prepared, sle, correlations = case_inputs(config)
    return write_bytes(Path(folder) / "case_inputs.pkl", pickle.dumps((prepared, sle, correlations)))


@functools.lru_cache(maxsize=2)
def _worker_inputs(config: str, inputs: str) -> tuple[Any, Any, Any, dict[int, Any]]:
    """What a held-out run needs, once per worker process: from `write_inputs`' file when given."""
    if not inputs:
        return case_inputs(config)
    import pickle

    prepared, sle, correlations = pickle.loads(Path(inputs).read_bytes())
    return _case_config(config), prepared, sle, correlations


def stream_lengths(correlations: Mapping[int, Any]) -> dict[int, tuple[float, float]]:
    """(ℓ in cells, partial-sill share) per stream of a run's fitted correlations."""
    return {
        s: (c.length_cells, (c.sill - c.nugget) / c.sill if c.sill > 0 else 0.0) for s, c in correlations.items()
    }


def pseudo_noise(prepared: Any, lengths: Mapping[int, tuple[float, float]], seed: int, draw: int = 0) -> np.ndarray:
    """Errors at σ_obs for every kept point: per (stream, interval) block a unit GSTools field of
    exponential correlation ℓ (`lengths[stream]` = (ℓ in cells, its share of the variance)) plus
    the remaining share white; a stream without an entry gets white errors. `draw` r > 0 is a
    further independent draw at the same seed (draw 0: the stream of the single-draw version)."""
    from harness.sim.correlated import StreamErrors

    layout = prepared.layout
    sigma = np.asarray(prepared.sigma_obs, dtype=np.float64)
    rng = np.random.default_rng([seed, 0x5EED] if draw == 0 else [seed, 0x5EED, draw])
    unit = rng.standard_normal(prepared.n_points)
    for s, (length, share) in lengths.items():
        if share <= 0 or length <= 0:
            continue
        for block in np.unique(layout.block[prepared.stream == s]):
            sel = np.flatnonzero((prepared.stream == s) & (layout.block == block))
            field = StreamErrors(layout.pixel[sel], layout.grid_shape, length).draw(int(rng.integers(1 << 31)))
            unit[sel] = np.sqrt(share) * field + np.sqrt(1.0 - share) * unit[sel]
    return unit * sigma


def _calibrator(plant: str) -> Any:
    from fusion.inference.calibration import calibrate

    if plant == "in_sample":
        return functools.partial(calibrate, leave_out=False)
    return None


def held_out(cfg: Any, prepared: Any, sle: Any, k: int, noise: np.ndarray, plant: str = "") -> dict[str, Any]:
    """Member k plays the truth (its rates + `noise`); FUSION's procedure (`fusion.pipeline.run`,
    Laplace) weighs the others; member k's SLE scored against their weighted and equal-weight ranges."""
    import warnings

    from fusion.errors import DataWarning
    from fusion.inference.calibration import crps
    from fusion.pipeline import run
    from fusion.projection import weighted_quantile

    cfg = cfg.with_updates(
        compat="fixed", inference={"method": "laplace"},
        likelihood={"sensitivity": False, **({"calibration": "off"} if plant == "uncalibrated" else {})},
    )  # fmt: skip
    keep = [j for j in range(prepared.n_members) if j != k]
    y = (np.asarray(prepared.F[k], dtype=np.float64) + noise).astype(prepared.y_obs.dtype)
    ids = tuple(prepared.member_ids[j] for j in keep)
    pseudo = replace(prepared, y_obs=y, F=np.ascontiguousarray(prepared.F[keep]), member_ids=ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the pseudo-data's own notes (a bound ℓ, a fallback)
        result = run(cfg, prepared=pseudo, sle=sle, progressbar=False, calibrator=_calibrator(plant))
    values = np.asarray(sle.sel(member=list(ids)).values, dtype=np.float64)
    truth = float(sle.sel(member=prepared.member_ids[k]))
    w = np.asarray(result.projection["weight"].sel(member=list(ids)).values, dtype=np.float64)
    flat = np.full(len(ids), 1.0 / len(ids))
    lo, hi = weighted_quantile(values, w, [cfg.projection.lower_q, cfg.projection.upper_q])
    lo0, hi0 = weighted_quantile(values, flat, [cfg.projection.lower_q, cfg.projection.upper_q])
    scores = crps(values, np.stack([w, flat]), np.array([truth, truth]))
    post = result.trace["posterior"]
    member_scale = result.summary["likelihood"].get("member_scale") or {"thick": 1.0, "vel": 1.0}
    contrasts = {
        name: (member_scale[name] * post[f"logL_{name}"]).mean(("chain", "draw")).sel(member=list(ids)).values
        for name in ("thick", "vel")
    }  # the streams' plug-in contrasts at λ = 1, for the figure's sharpness path
    cal = result.summary.get("calibration") or {}
    lam = cal.get("temperature") or {"thick": 1.0, "vel": 1.0}
    return {
        "index": k, "member": str(prepared.member_ids[k]), "sle_mm": truth,
        "inside": bool(lo <= truth <= hi), "inside_unweighted": bool(lo0 <= truth <= hi0),
        "lower": float(lo), "upper": float(hi), "lower_unweighted": float(lo0), "upper_unweighted": float(hi0),
        "crps": float(scores[0]), "crps_unweighted": float(scores[1]),
        "members_in_play": float(1.0 / np.sum(w * w)),
        "temperature": {k: float(v) for k, v in lam.items()}, "confident": bool(cal.get("confident", False)),
        "contrasts": {k: [float(v) for v in c] for k, c in contrasts.items()},
    }  # fmt: skip


def replicate_of(index: int, n_members: int) -> tuple[int, int]:
    """(member held out, noise draw) of replicate `index`: draws are whole batches over the members."""
    return index % n_members, index // n_members


def _held_out(spec: PerfectModelSpec, index: int) -> dict[str, Any]:
    cfg, prepared, sle, correlations = _worker_inputs(spec.config, spec.inputs)
    k, draw = replicate_of(index, spec.n_members)
    noise = pseudo_noise(prepared, stream_lengths(correlations), seed=spec.seed * 100_003 + k, draw=draw)
    return {**held_out(cfg, prepared, sle, k, noise, spec.plant), "index": index, "draw": draw}


def held_out_chunk(spec: PerfectModelSpec, indices: list[int], cores: int) -> dict[str, Any]:
    """Worker entry point (`harness.sim.store.run_replicates`): the held-out runs of replicates `indices`."""
    from harness.sim.parallel import worker_info

    return {"results": [_held_out(spec, k) for k in indices], **worker_info()}
