"""Exports of a finished run for downstream users (DESIGN.md, "Exports for downstream users").

Two consumers:
- population / hierarchical models take the posterior without re-running the inference: a JSON
  container (`mean`, dense `cov` over the same names, optional `samples`, `provenance`) read
  back with `json` alone;
- sea-level frameworks total component files: FACTS reads `sea_level_change` samples on
  (`samples`, `years`, `locations`) and sums them across components.

Only a complete run folder (`_SUCCESS`, every file `fusion run` writes) is exported, and
nothing is written unless the whole export succeeded (temporary name, then rename).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fusion.errors import InputError
from fusion.inference.parameters import PARAMS  # light: names only, no PyMC
from fusion.io import SUCCESS, atomic_path, json_text, sha256_file

__all__ = [
    "FORMATS",
    "DEFAULT_YEARS",
    "DEFAULT_FACTS_SAMPLES",
    "RunFolder",
    "parse_years",
    "posterior_container",
    "facts_dataset",
    "export",
]

FORMATS: tuple[str, ...] = ("posterior", "facts")
DEFAULT_YEARS = "2020:2100:10"
DEFAULT_FACTS_SAMPLES = 20000
_RUN_FILES = ("run_metadata.json", "trace.nc", "projection.csv", "summary.json", "weights.csv")


@dataclass(frozen=True)
class RunFolder:
    """A finished `fusion run` folder, read lazily; refuses unfinished or foreign folders."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        path = Path(path)
        if not path.is_dir():
            raise InputError(path, "not a folder (expected a `fusion run` output folder)")
        if not (path / SUCCESS).is_file():
            raise InputError(path, f"unfinished run folder (no {SUCCESS}); rerun `fusion run` first")
        missing = [name for name in _RUN_FILES if not (path / name).is_file()]
        if missing:
            raise InputError(path, f"not a `fusion run` folder (missing {', '.join(missing)})")
        run = cls(path)
        meta = run.metadata
        if not isinstance(meta, dict) or not {"config", "config_hash", "fusion_version"} <= meta.keys():
            raise InputError(path / "run_metadata.json", "not written by `fusion run` (no config, config_hash)")
        return run

    @cached_property
    def metadata(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "run_metadata.json").read_text())
        except (ValueError, UnicodeDecodeError):
            raise InputError(self.path / "run_metadata.json", "not valid JSON") from None

    @cached_property
    def posterior(self) -> xr.Dataset:
        path = self.path / "trace.nc"
        try:
            with xr.open_datatree(path) as tree:
                post = tree["posterior"].to_dataset().load()
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(path, f"no readable posterior group ({type(exc).__name__})") from None
        missing = [v for v in (*PARAMS, "w") if v not in post.data_vars]
        if missing:
            raise InputError(path, f"posterior lacks {', '.join(missing)}")
        return post

    @cached_property
    def projection(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "projection.csv", dtype={"member_id": str})

    @property
    def member_ids(self) -> list[str]:
        return [str(m) for m in self.projection["member_id"]]

    def weight_draws(self) -> np.ndarray:
        """(D, M) posterior draws of `w`, members in `projection.csv` order, chains one after another."""
        w = self.posterior["w"].sel(member=self.member_ids).transpose("chain", "draw", "member")
        return np.asarray(w.values, dtype=np.float64).reshape(-1, len(self.member_ids))

    def config(self) -> Any:
        from fusion.config import Config

        return Config.model_validate(self.metadata["config"])


# --- the posterior container ---------------------------------------------------------------


def _names_and_draws(run: RunFolder) -> tuple[list[str], np.ndarray]:
    post = run.posterior
    cols = [np.asarray(post[p].values, dtype=np.float64).reshape(-1) for p in PARAMS]
    w = run.weight_draws()
    names = [*PARAMS, *(f"w[{m}]" for m in run.member_ids)]
    return names, np.column_stack([*cols, w])


def _obs_ops_used(meta: dict[str, Any]) -> list[str]:
    """The streams whose points entered the likelihood with a non-zero weight."""
    prep = meta.get("prepared", {})
    alpha = meta["config"].get("inference", {}).get("stream_weights", {"thick": 0.5, "vel": 0.5})
    used = []
    if prep.get("n_dhdt", 0) > 0 and alpha.get("thick", 0.5) > 0:
        used.append("dhdt")
    if prep.get("n_vel", 0) > 0 and alpha.get("vel", 0.5) > 0:
        used.append("dvdt")
    return used


def posterior_container(run: RunFolder, *, samples: bool = False) -> dict[str, Any]:
    """mean, dense cov and (optionally) samples of the run's draws, with provenance."""
    names, draws = _names_and_draws(run)
    meta = run.metadata
    inf = meta["config"].get("inference", {})
    method = meta.get("method", inf.get("method", "nuts"))
    chains, per_chain = int(run.posterior.sizes["chain"]), int(run.posterior.sizes["draw"])
    diagnostics = meta.get("diagnostics", {})
    n_iter = (
        int(diagnostics.get("n_iter", 0))
        if method == "laplace"
        else chains * (int(inf.get("tune", 0)) + per_chain)
    )
    model = meta.get("forward_model", {})
    provenance = {
        "forward_model_id": model.get("id"),
        "forward_model_hash": model.get("hash"),
        "obs_ops_used": _obs_ops_used(meta),
        "n_iter": n_iter,
        "n_draws": int(draws.shape[0]),
        "chains": chains,
        "converged": bool(meta.get("convergence", {}).get("passed", False)),
        "diagnostics": diagnostics,
        "method": method,
        "sampler": meta.get("sampler", {}).get("name", inf.get("sampler")),
        "seed": inf.get("seed"),
        "config_hash": meta["config_hash"],
        "input_sha256": meta.get("input_files", {}),
        "fusion_version": meta.get("fusion_version"),
        "compat": meta.get("compat"),
        "run_dir": str(run.path.resolve()),
        "run_created_at": meta.get("created_at"),
        "target_year": meta.get("projection", {}).get("target_year"),
    }
    return {
        "mean": dict(zip(names, draws.mean(axis=0).tolist(), strict=True)),
        "cov": {"kind": "dense", "names": names, "matrix": np.cov(draws, rowvar=False).tolist()},
        "samples": {"names": names, "matrix": draws.tolist()} if samples else None,
        "provenance": provenance,
    }


# --- the FACTS component file ---------------------------------------------------------------


def parse_years(text: str, where: object = None) -> np.ndarray:
    """`START:END:STEP` (integers, STEP > 0, END = START + k·STEP) → int32 years."""
    parts = str(text).split(":")
    try:
        start, end, step = (int(p) for p in parts)
        if len(parts) != 3:
            raise ValueError
    except ValueError:
        raise InputError(where, f"--years {text!r}: expected START:END:STEP in whole years") from None
    if step <= 0 or end < start or (end - start) % step:
        raise InputError(where, f"--years {text!r}: need STEP > 0 and END = START + k·STEP with END ≥ START")
    return np.arange(start, end + 1, step, dtype=np.int32)


def _volume_at(t: np.ndarray, v: np.ndarray, year: float) -> float | None:
    from fusion.projection import TARGET_TOLERANCE_YEARS

    i = int(np.argmin(np.abs(t - year)))
    return float(v[i]) if abs(t[i] - year) <= TARGET_TOLERANCE_YEARS else None


def member_trajectories(
    run: RunFolder, years: np.ndarray, baseyear: float | None
) -> tuple[np.ndarray, str]:
    """(M, Y) SLE in mm per member and year, from its `totig` series, and the baseyear's label.

    Default baseyear: the end of each member's historical run, as `projection.csv` uses, so the
    target-year column repeats its `sle_mm` bit for bit. Years come from the forward run (the
    baseyear may also fall in the historical one); a year the series do not cover is an error.
    """
    from fusion.projection import projection_files, read_volume, sle_mm

    cfg = run.config()
    spec = cfg.projection
    ids = run.member_ids
    hist = projection_files(spec.historical_dir, ids, "projection.historical_dir",
                             storage_options=spec.storage_options, cache_dir=cfg.cache.dir)
    fwd = projection_files(spec.forward_dir, ids, "projection.forward_dir",
                             storage_options=spec.storage_options, cache_dir=cfg.cache.dir)
    recorded = run.metadata.get("input_files", {})
    out = np.empty((len(ids), years.size))
    ends = set()
    for k, m in enumerate(ids):
        for path in (hist[m], fwd[m]):
            name = getattr(path, "url", None) or str(path)  # a remote input is recorded by its URL
            if name in recorded and sha256_file(path) != recorded[name]:
                raise InputError(path, "changed since the run (SHA-256 differs from run_metadata.json)")
        t_hist, v_hist = read_volume(hist[m], spec.volume_var)
        t_fwd, v_fwd = read_volume(fwd[m], spec.volume_var)
        ends.add(round(float(t_hist[-1]), 3))
        if baseyear is None:
            v_base = v_hist[-1]
        else:
            v_base = _volume_at(t_fwd, v_fwd, baseyear)
            v_base = _volume_at(t_hist, v_hist, baseyear) if v_base is None else v_base
            if v_base is None:
                raise InputError(
                    fwd[m], f"member {m}: baseyear {baseyear:g} outside its totig series "
                    f"({t_hist[0]:g}–{t_fwd[-1]:g})",
                )
        for j, year in enumerate(years):
            v = _volume_at(t_fwd, v_fwd, float(year))
            if v is None:
                raise InputError(
                    fwd[m], f"member {m}: year {int(year)} outside its forward totig series "
                    f"({t_fwd[0]:g}–{t_fwd[-1]:g}); not extrapolated",
                )
            out[k, j] = float(sle_mm(v_base, v))
    if baseyear is not None:
        label = f"{baseyear:g}"
    elif len(ends) == 1:
        label = f"{next(iter(ends)):g}"
    else:
        label = "end of each member's historical run"
    return out, label


def draw_members(weights: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """Per sample: a posterior draw at random, then a member with that draw's weights."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, weights.shape[0], size=n_samples)
    u = rng.random(n_samples)
    cum = np.cumsum(weights[d], axis=1)
    cum /= cum[:, -1:]
    return np.minimum((u[:, None] >= cum).sum(axis=1), weights.shape[1] - 1)


def facts_dataset(
    run: RunFolder,
    *,
    n_samples: int = DEFAULT_FACTS_SAMPLES,
    years: np.ndarray | None = None,
    baseyear: float | None = None,
    scenario: str | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """The component file FACTS totals: `sea_level_change` (mm) on samples × years × locations."""
    years = parse_years(DEFAULT_YEARS) if years is None else np.asarray(years, dtype=np.int32)
    traj, base_label = member_trajectories(run, years, baseyear)
    members = draw_members(run.weight_draws(), n_samples, seed)
    values = traj[members].astype(np.float32)[:, :, None]
    meta = run.metadata
    inf = meta["config"].get("inference", {})
    method = meta.get("method", inf.get("method", "nuts"))
    history = (
        f"{meta.get('created_at', '')}: fusion run (config hash {meta['config_hash'][:12]}, method {method}); "
        f"fusion export --format facts --samples {n_samples} --years {years[0]}:{years[-1]}:"
        f"{int(years[1] - years[0]) if years.size > 1 else 1} --baseyear {base_label} --seed {seed} "
        f"(fusion {meta.get('fusion_version')})"
    )
    return xr.Dataset(
        {
            "sea_level_change": (("samples", "years", "locations"), values, {"units": "mm"}),
            "lat": (("locations",), np.array([np.inf], dtype=np.float32)),
            "lon": (("locations",), np.array([np.inf], dtype=np.float32)),
        },
        coords={
            "samples": np.arange(n_samples, dtype=np.int64),
            "years": years.astype(np.int32),
            "locations": np.array([-1], dtype=np.int64),
        },
        attrs={
            "description": "Antarctic ice-sheet contribution to global mean sea level from an ensemble "
            "weighted by FUSION against satellite dh/dt and dv/dt; each sample is one member's "
            "trajectory, the member drawn with the weights of a random posterior draw",
            "history": history,
            "source": f"FUSION {meta.get('fusion_version')} ({method}); run config hash {meta['config_hash']}",
            "scenario": scenario if scenario is not None else "unspecified",
            "baseyear": base_label,
            "members": ",".join(run.member_ids),
        },
    )


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise InputError(out, "is a folder; --out takes a file name")
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not _writable(probe):
        raise InputError(out, "cannot be written (folder missing or not writable)")


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK | os.X_OK)


def export(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    *,
    samples: int | bool | None = None,
    years: str | None = None,
    baseyear: float | None = None,
    scenario: str | None = None,
    seed: int = 0,
) -> Path:
    """`fusion export`: validate everything, build the export in memory, then write it atomically."""
    out = Path(out)
    if fmt not in FORMATS:
        raise InputError(None, f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    _check_out(out)
    run = RunFolder.open(run_dir)
    if fmt == "posterior":
        text = json_text(posterior_container(run, samples=bool(samples)), indent=1, sort_keys=False)
        return _write(out, lambda tmp: tmp.write_text(text))
    n = DEFAULT_FACTS_SAMPLES if samples is None else int(samples)
    if n <= 0:
        raise InputError(None, f"--samples {n}: must be a positive number of samples")
    if baseyear is not None and not math.isfinite(baseyear):
        raise InputError(None, f"--baseyear {baseyear}: not a finite year")
    ds = facts_dataset(
        run, n_samples=n, years=parse_years(years or DEFAULT_YEARS), baseyear=baseyear,
        scenario=scenario, seed=seed,
    )
    encoding = {
        "sea_level_change": {"zlib": True, "complevel": 4, "_FillValue": None},
        "lat": {"_FillValue": None},
        "lon": {"_FillValue": None},
    }
    return _write(out, lambda tmp: ds.to_netcdf(tmp, format="NETCDF4", encoding=encoding))


def _write(out: Path, write: Any) -> Path:
    """Write via a temporary sibling and rename; any OS refusal is one line naming `out`."""
    try:
        with atomic_path(out) as tmp:
            write(tmp)
    except OSError as exc:
        raise InputError(out, f"cannot be written ({exc.strerror or type(exc).__name__})") from None
    return out
