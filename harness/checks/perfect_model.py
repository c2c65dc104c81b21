"""Check `perfect_model`: do the weights hold when no member is the truth? (issue 34)

Each member of the case's ensemble in turn plays the truth and FUSION's whole procedure runs
on the others (`harness.sim.perfect_model`). Gates:
- the number of held-out members inside the weighted [lower_q, upper_q] range is not
  significantly below the unweighted ensemble's own count (one-sided exact binomial test at
  `alpha`, `scipy.stats.binomtest`, against the unweighted ensemble's rate: with few members an
  ensemble cannot cover its own extremes, so nominal coverage is not the bar);
- the weighted mixture's mean CRPS is at most `crps_ratio_max` times the unweighted ensemble's.
Both carry their Monte-Carlo uncertainty (harness.verdict): the coverage its exact
(Clopper–Pearson) interval, the CRPS ratio a seeded bootstrap over the held-out members. The
members are all the replicates a case has, so the check cannot extend them as SBC extends its
draws: it decides on the test and the point ratio, and the report shows how far the intervals
reach. Reported: the counts against nominal, the mean width relative to unweighted, the CRPS skill
score, members in play (1/Σw²), a per-member table and `perfect_model.png` (the held-out SLEs
against their weighted ranges; coverage and relative width against the member temperature λ,
recomputed from each held-out run's member contrasts, the run's median λ marked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.cases import catalog_of
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.gates import PerfectModelGate

__all__ = ["run_check", "summarize"]


def _outer_grid(records: list[dict[str, Any]], lower_q: float, upper_q: float, sle: dict[str, float]) -> list[dict[str, float]]:
    """Coverage and relative width of the outer test along each held-out run's own temperatures
    times a sharpness factor κ (κ = 1: what each run chose), from the runs' plug-in contrasts."""
    from fusion.inference.calibration import PATH
    from fusion.projection import weighted_quantile

    members = list(sle)
    rows = []
    width0 = np.mean([r["upper_unweighted"] - r["lower_unweighted"] for r in records])
    for kappa in PATH:
        inside, width = [], []
        for r in records:
            others = [m for m in members if m != r["member"]]
            z = sum(min(1.0, kappa * r["temperature"][s]) * np.asarray(r["contrasts"][s]) for s in ("thick", "vel"))
            w = np.exp(z - z.max())
            lo, hi = weighted_quantile(np.array([sle[m] for m in others]), w / w.sum(), [lower_q, upper_q])
            inside.append(lo <= r["sle_mm"] <= hi)
            width.append(hi - lo)
        rows.append({"factor": kappa, "coverage": float(np.mean(inside)),
                     "relative_width": float(np.mean(width) / width0) if width0 > 0 else float("nan")})  # fmt: skip
    return rows


def summarize(records: list[dict[str, Any]], lower_q: float, upper_q: float) -> dict[str, Any]:
    """The check's figures from the held-out records (the gates judge them: `_gates`)."""
    from scipy.stats import binomtest

    m = len(records)
    inside = sum(r["inside"] for r in records)
    inside0 = sum(r["inside_unweighted"] for r in records)
    rate0 = inside0 / m
    p_value = float(binomtest(inside, m, rate0, alternative="less").pvalue) if 0 < rate0 < 1 else (
        1.0 if inside >= inside0 else 0.0
    )
    crps_w = float(np.mean([r["crps"] for r in records]))
    crps_0 = float(np.mean([r["crps_unweighted"] for r in records]))
    width = np.mean([r["upper"] - r["lower"] for r in records])
    width0 = np.mean([r["upper_unweighted"] - r["lower_unweighted"] for r in records])
    return {
        "n_members": m, "inside": inside, "inside_unweighted": inside0, "nominal": upper_q - lower_q,
        "coverage": inside / m, "coverage_unweighted": rate0, "binomial_p": p_value,
        "crps": crps_w, "crps_unweighted": crps_0, "crps_ratio": crps_w / crps_0 if crps_0 > 0 else float("nan"),
        "crps_skill": 1.0 - crps_w / crps_0 if crps_0 > 0 else float("nan"),
        "relative_width": float(width / width0) if width0 > 0 else float("nan"),
        "members_in_play": float(np.mean([r["members_in_play"] for r in records])),
        "temperature_median": {s: float(np.median([r["temperature"][s] for r in records])) for s in ("thick", "vel")},
        "confident": int(sum(r["confident"] for r in records)),
    }  # fmt: skip


def _gates(records: list[dict[str, Any]], fig: dict[str, Any], gate: PerfectModelGate, seed: int) -> list[dict[str, Any]]:
    """The two gate records, each with its interval over the held-out members (not extendable:
    decided by the binomial test and the point ratio, `harness.checks.gate_record`'s `passed`)."""
    from harness.verdict import binomial, bootstrap

    n = fig["n_members"]
    covered = gate_record(
        "held-out coverage (one-sided binomial test against the unweighted ensemble's rate)", "≥",
        fig["coverage_unweighted"], fig["coverage"], passed=fig["binomial_p"] >= gate.alpha,
    )  # fmt: skip
    ci = binomial(fig["inside"], n, level=1.0 - 2.0 * gate.alpha)
    covered.update(interval=[ci.lower, ci.upper], level=ci.level, n=n, method=f"exact binomial, p = {fig['binomial_p']:.3g}")
    ratio = gate_record("CRPS ratio (weighted / unweighted)", "≤", gate.crps_ratio_max, fig["crps_ratio"])
    if ratio is not None:
        pairs = (np.array([r["crps"] for r in records]), np.array([r["crps_unweighted"] for r in records]))
        boot = bootstrap(pairs, lambda a, b: float(np.mean(a) / np.mean(b)), level=0.95, seed=seed)
        ratio.update(interval=[boot.lower, boot.upper], level=boot.level, n=n, method="bootstrap over members")
    return gates_of(covered, ratio)


def run_check(ctx: CheckContext, *, plant: str = "") -> CheckResult:
    """The perfect-model test on one case (`plant`: a defective procedure, for the tests)."""
    from fusion.config import config_hash
    from fusion.figures.calibration import plot_perfect_model
    from fusion.io import png_bytes, write_bytes
    from harness.sim.perfect_model import PerfectModelSpec, case_inputs, held_out_chunk, write_inputs
    from harness.sim.store import run_replicates

    gate: PerfectModelGate = ctx.gates.perfect_model
    out = Path(ctx.artifact_dir)
    out.mkdir(parents=True, exist_ok=True)
    case = catalog_of(ctx).get(ctx.case, out)
    cfg, prepared, sle, _ = case_inputs(str(case.config))  # compat: fixed
    inputs = write_inputs(str(case.config), out)  # the workers read these, not the case's grids
    spec = PerfectModelSpec(str(case.config), config_hash(cfg), prepared.n_members, seed=cfg.inference.seed, plant=plant,
                            inputs=str(inputs))  # fmt: skip
    ctx.progress(f"perfect_model[{ctx.case}]: {prepared.n_members} members, each held out as the truth")
    records, _, _ = run_replicates(
        held_out_chunk, spec, prepared.n_members, out, label=f"perfect_model[{ctx.case}]",
        scheduler=ctx.scheduler, chunk_size=max(1, prepared.n_members // 4), progress=ctx.progress,
    )  # fmt: skip
    lq, uq = cfg.projection.lower_q, cfg.projection.upper_q
    fig = summarize(records, lq, uq)
    values = {str(m): float(v) for m, v in zip(sle["member"].values, sle.values, strict=True)}
    drawn = {
        "method": "perfect_model (outer: every member held out)", "temperature": fig["temperature_median"],
        "confident": fig["binomial_p"] >= gate.alpha, "lower_q": lq, "upper_q": uq,
        "coverage_unweighted": fig["coverage_unweighted"], "crps_skill": fig["crps_skill"],
        "held_out": records, "grid": _outer_grid(records, lq, uq, values),
    }  # fmt: skip
    write_bytes(out / "perfect_model.png", png_bytes(plot_perfect_model({"calibration": drawn})))
    gates = _gates(records, fig, gate, seed=cfg.inference.seed)
    failed = [g for g in gates if not g["passed"]]
    messages = [
        f"held-out members inside the {lq:.0%}–{uq:.0%} range: {fig['inside']}/{fig['n_members']} weighted, "
        f"{fig['inside_unweighted']}/{fig['n_members']} unweighted (nominal {fig['nominal']:.0%}); "
        f"binomial p {fig['binomial_p']:.3g}",
        f"mean CRPS {fig['crps']:.3g} mm against {fig['crps_unweighted']:.3g} unweighted (skill {fig['crps_skill']:+.2f}); "
        f"relative width {fig['relative_width']:.2f}; members in play {fig['members_in_play']:.1f}; "
        f"median λ thick {fig['temperature_median']['thick']:.3g}, vel {fig['temperature_median']['vel']:.3g} "
        f"({fig['confident']}/{fig['n_members']} runs confident)",
    ]  # fmt: skip
    table = {
        "title": "Each member held out as the truth",
        "header": ["member", "SLE (mm)", "weighted range", "inside", "unweighted range", "inside", "CRPS", "CRPS unweighted", "λ thick / vel", "in play"],
        "rows": [[r["member"], f"{r['sle_mm']:.1f}", f"{r['lower']:.1f}–{r['upper']:.1f}", "yes" if r["inside"] else "no",
                  f"{r['lower_unweighted']:.1f}–{r['upper_unweighted']:.1f}", "yes" if r["inside_unweighted"] else "no",
                  f"{r['crps']:.2f}", f"{r['crps_unweighted']:.2f}",
                  f"{r['temperature']['thick']:.3g} / {r['temperature']['vel']:.3g}", f"{r['members_in_play']:.1f}"]
                 for r in records],
    }  # fmt: skip
    return CheckResult(
        name="perfect_model", case=ctx.case, status="fail" if failed else "pass", figures=fig,
        thresholds=gate.model_dump(), gates=gates, messages=messages, plots=["perfect_model.png"], tables=[table],
        config_hash=config_hash(cfg),
        provenance={"config": str(case.config), "compat": "fixed", "method": "laplace", "plant": plant or None},
    )  # fmt: skip
