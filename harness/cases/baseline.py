"""`harness baseline --case DIR [--accept --name NAME --note TEXT]`: what FUSION says on a team's case, recorded.

FUSION runs on the case as users run it — the case config's own compat and likelihood form,
sampler settings and seeds, through `fusion.pipeline.run`, the stages of `fusion run` — and
its outputs become one record (`outputs_record`), in three kinds that `drift` judges
differently:

- `deterministic` — functions of the inputs, config and code alone, compared bit for bit: the
  prepared arrays' SHA-256s and counts, the availability counts, each member's SLE, the
  sensitivity table (Laplace fits with a fixed seed);
- `sampled` — posterior means with their Monte-Carlo standard errors, compared by the MCSE
  z-test of statistical parity: each member's weight, the four noise parameters, the
  posterior of Σ w·SLE (mean and quantiles);
- `reported` — figures shown when they move but not gated: the weighted mixture's median,
  interval, mean and sd (steps of the member SLEs, no MCSE);

plus `setup` — the effective config with every default resolved (so a changed default of a new
FUSION shows as a config difference though no file changed), the form sampled and the input
SHA-256s, with paths relative to the case folder — and `provenance`. A first baseline needs no
review; every later one is a reviewed act (`--accept`, a name and a note, as `harness signoff`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any


from fusion.errors import InputError
from fusion.io import write_json
from harness.cases.digest import array_sha256
from harness.cases.baseline_store import SCHEMA, Baseline, baseline_id, read_baselines, write_baseline
from harness.cases import Case, load_case

if TYPE_CHECKING:
    from fusion.pipeline import Result

__all__ = ["Acceptance", "FreshRun", "flat", "make_baseline", "outputs_record", "run_case", "write_run_files"]

PREPARED_ARRAYS: tuple[str, ...] = ("y_obs", "sigma_obs", "F", "speed", "stream")
#: config sections that change no result: where outputs go and where remote inputs are cached
NOT_SETUP: tuple[str, ...] = ("output", "cache")


@dataclass(frozen=True)
class Acceptance:
    """A reviewer's re-baselining: who and why (the `harness signoff` style)."""

    name: str
    note: str

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InputError(None, "--accept needs --name NAME (who reviewed the change)")
        if not self.note.strip():
            raise InputError(None, "--accept needs --note TEXT (why the change is expected)")


@dataclass
class FreshRun:
    """One run of FUSION on a case: the record `drift` compares and the result behind it."""

    record: dict[str, Any]
    result: Result


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as {dotted key: scalar}; lists index as `[i]` (`intervals[0].kept`)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flat(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            out.update(flat(item, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def _relative(value: Any, root: Path) -> Any:
    """An absolute local path as it reads from the case folder (a moved case keeps its setup)."""
    if isinstance(value, str) and "://" not in value and os.path.isabs(value):
        return os.path.relpath(value, root)
    return value


def _setup(case: Case, cfg: Any) -> dict[str, Any]:
    from fusion.inference.likelihood import effective_form

    config = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in NOT_SETUP}
    inf = cfg.inference
    nutpie = inf.method == "nuts" and inf.sampler == "nutpie"
    return {
        "config": {k: _relative(v, case.root) for k, v in flat(config).items()},
        # what FUSION resolves from the config by its own rules (so a changed rule shows too)
        "likelihood_form": effective_form(cfg),
        "mass_matrix": inf.adaptation(cfg.compat) if nutpie else None,
        "inputs_sha256": {_relative(p, case.root): d for p, d in case.inputs_sha256().items()},
    }


def _deterministic(result: Result) -> dict[str, dict[str, Any]]:
    p = result.prepared
    prepared: dict[str, Any] = {f"{a}.sha256": array_sha256(getattr(p, a)) for a in PREPARED_ARRAYS}
    prepared["digest"] = hashlib.sha256("".join(prepared.values()).encode()).hexdigest()
    prepared.update(n_points=p.n_points, n_dhdt=p.n_dhdt, n_vel=p.n_vel, member_ids=list(p.member_ids), compat=p.compat)
    out: dict[str, dict[str, Any]] = {
        "prepared": prepared,
        "availability": flat(p.availability.record) if p.availability is not None else {},
    }
    if result.projection is not None:
        sle = result.projection["sle_mm"]
        out["member_sle_mm"] = {str(m): float(v) for m, v in zip(sle["member"].values, sle.values, strict=True)}
    if result.summary is not None and "sensitivity" in result.summary:
        out["sensitivity"] = flat(result.summary["sensitivity"])
    return out


def _sampled(result: Result) -> dict[str, dict[str, float]]:
    """Posterior means and their MCSE: what the z-test compares."""
    import arviz_stats as azs

    from harness.checks.parity.statistical import posterior_moments

    out = {q: {"mean": m, "mcse": e} for q, (m, e) in posterior_moments(result.trace, result.prepared.member_ids).items()}
    if result.projection is not None and result.summary is not None:
        draws = result.projection["weighted_mean"]
        out["projection.weighted_mean.mean"] = {
            "mean": float(draws.mean()), "mcse": float(azs.mcse(draws, method="mean")),
        }  # fmt: skip
        levels = {"lower": result.summary["lower_q"], "median": 0.5, "upper": result.summary["upper_q"]}
        for key, q in levels.items():
            out[f"projection.weighted_mean.{key}"] = {
                "mean": float(result.summary["weighted_mean"][key]),
                "mcse": float(azs.mcse(draws, method="quantile", prob=float(q))),
            }
    return out


def _reported(result: Result) -> dict[str, Any]:
    """The weighted mixture's figures: they move in steps between member SLEs and carry no MCSE."""
    if result.summary is None:
        return {}
    return {f"projection.{k}": result.summary[k] for k in ("median", "lower", "upper", "mean", "sd")}


def outputs_record(case: Case, result: Result, caught: list[str]) -> dict[str, Any]:
    """The record of one run (`baseline.json`, or a drift run's `fresh.json`)."""
    from fusion.config import config_hash
    from fusion.pipeline import library_versions

    cfg, inf = result.config, result.config.inference
    versions = library_versions()
    digest = config_hash(cfg)
    return {
        "schema": SCHEMA,
        "id": baseline_id(versions.get("fusion"), digest),
        "case": case.name,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
        "fusion_version": versions.get("fusion"),
        "config_hash": digest,
        "setup": _setup(case, cfg),
        "deterministic": _deterministic(result),
        "sampled": _sampled(result),
        "reported": _reported(result),
        "provenance": {
            "config_file": _relative(str(case.config), case.root),
            "compat": cfg.compat,
            "method": inf.method,
            "sampler": {"name": inf.sampler, "draws": inf.draws, "tune": inf.tune, "chains": inf.chains,
                        "target_accept": inf.target_accept},
            "seeds": {"inference": inf.seed, "subsample": inf.subsample.seed},
            "convergence": {"passed": result.converged, "failures": result.convergence_failures},
            "versions": versions,
            "timings": result.timings,
            "warnings": caught,
        },
        "accepted": None,
    }


def run_case(case: Case, *, progressbar: bool = False, seed: int | None = None) -> FreshRun:
    """FUSION on the case as `fusion run` runs it (`seed`: another sampler seed, `drift`'s further
    runs); its warnings (data, convergence) are kept in the record."""
    from fusion.pipeline import run

    cfg = case.settings if seed is None else case.settings.with_updates(inference={"seed": int(seed)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(cfg, with_projection=case.has_projection, progressbar=progressbar)
    lines = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return FreshRun(outputs_record(case, result, lines), result)


def write_run_files(fresh: FreshRun, folder: Path) -> None:
    """The run's own outputs beside the record: `weights.csv`, `summary.json`, `run_metadata.json`."""
    from fusion.pipeline import save_metadata, save_weights

    save_weights(fresh.result, folder / "weights.csv")
    if fresh.result.summary is not None:
        write_json(folder / "summary.json", fresh.result.summary)
    save_metadata(fresh.result, folder / "run_metadata.json")


def make_baseline(
    case_dir: Path,
    accept: Acceptance | None = None,
    *,
    progress: Callable[[str], None] = print,
    progressbar: bool = False,
) -> Baseline:
    """Record a baseline of the case: the first one as is, any later one only with `accept`."""
    case = load_case(case_dir, require_comparison=False)
    existing = read_baselines(case.root, case.name)
    if existing and accept is None:
        raise InputError(
            case.root / "baselines",
            f"holds baseline {existing[-1].id} already; re-baselining is a reviewed act: "
            "add --accept --name NAME --note TEXT",
        )
    progress(f"baseline[{case.name}]: running FUSION on the case (compat: {case.settings.compat})")
    fresh = run_case(case, progressbar=progressbar)
    record = fresh.record
    if accept is not None:
        record["accepted"] = {
            "name": accept.name.strip(),
            "note": accept.note.strip(),
            "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "previous": existing[-1].id if existing else None,
        }
    same = [b for b in existing if b.id == record["id"]]
    if same:  # same FUSION version and config: the folder is replaced, its history kept in the record
        old = same[0].record
        record["replaced"] = [*old.get("replaced", []), {"created_at": old["created_at"], "accepted": old["accepted"]}]
    return Baseline(record["id"], write_baseline(case.root, record, lambda d: write_run_files(fresh, d)), record)
