"""Check `agreement`: how far the Laplace fast path (`inference.method: laplace`) may be trusted.

On each case both methods run on the same prepared arrays (`compat: fixed`, the gate's sampler
settings); the gate is on what users consume (DESIGN.md, "Exports"):
- every member weight: |E_L[w_m] − E_N[w_m]| ≤ 1 NUTS posterior sd of w_m;
- every member weight: sd_L(w_m) / sd_N(w_m) within [0.5, 2];
- the projection (cases with projection inputs): the median of the posterior of Σ_m w_m·SLE_m
  and the weighted-mixture median, each within 1 NUTS sd of its NUTS value.
Reported, not gated: the four noise parameters under both methods and ArviZ's PSIS k̂ of the
model density over the Gaussian (k̂ > 0.7: the Gaussian is a poor importance proposal even
where the weights agree).

The largest weight shift is read with its Monte-Carlo interval (`harness.verdict`): each
member's shift (E_L − E_N)/unit ± z·√(mcse_N² + mcse_L²)/unit (ArviZ's MCSE of both means),
folded to the absolute shift, simultaneous over members (Bonferroni). Its replicates are draws:
the first look at the convergence gate's settings (4 chains × 1,000 draws); undecided runs both
fits again with 1,000 more draws per chain (the same seeds, so the same inputs give the same
extension path and bits) up to `max_draws` draws per chain, under Pocock-type alpha spending over
the looks (`mc_alpha` per side, `harness.verdict.sequential`); still undecided at the cap is its
own status. The report shows the look that decided.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import norm

from fusion.inference.parameters import PARAMS
from harness.cases import catalog_of
from harness.cases.data import CaseData, sample_case
from harness.checks import CheckContext, CheckResult, gate_record, gates_of, status_of
from harness.checks.convergence import SETTINGS as CONVERGENCE_SETTINGS
from harness.checks.convergence import decide
from harness.gates import AgreementGate
from harness.report.plots import plot_agreement
from harness.verdict import Decision, Interval, Plan, sequential
from harness.verdict import decide as decide_interval

__all__ = ["THRESHOLDS", "OPS", "CaseInputs", "compare", "compare_case", "run_check", "shift_interval", "shift_plan"]


PARETO_K_GOOD = 0.7  # reported only: PSIS k̂ below it makes the Gaussian a reliable proposal
#: The gate's defaults (`harness.gates.AgreementGate`, settable: `agreement:` in the harness config).
THRESHOLDS: dict[str, float] = {**AgreementGate().model_dump(), "pareto_k_good": PARETO_K_GOOD}
#: NUTS at the convergence gate's settings, so the reference posterior is one the gate accepts.
SETTINGS: dict[str, Any] = {**CONVERGENCE_SETTINGS, "sampler": "nutpie"}


@dataclass
class CaseInputs:
    name: str
    cfg: Any
    prepared: Any
    has_projection: bool


def _nuts(cfg: Any, prepared: Any) -> xr.DataTree:
    """The reference fit; a borderline R-hat or ESS is sampled longer, as the convergence check does."""
    nuts = cfg.with_updates(inference={"method": "nuts"})
    return decide(lambda draws: sample_case(nuts.with_updates(inference={"draws": draws}), prepared),
                  nuts.inference.draws, var_names=PARAMS).trace


def _laplace(cfg: Any, prepared: Any) -> xr.DataTree:
    from fusion.inference.sampling import sample
    from fusion.pipeline import likelihood_inputs

    cfg = cfg.with_updates(inference={"method": "laplace"})
    settings, points = likelihood_inputs(cfg, prepared)  # the form users run, as the NUTS side
    return sample(cfg, points, progressbar=False, settings=settings)


#: The two fits the check compares; a test replaces one to plant a fault.
OPS: dict[str, Callable[[Any, Any], xr.DataTree]] = {"nuts": _nuts, "laplace": _laplace}


def _load(name: str, ctx: CheckContext) -> CaseInputs:
    from fusion.config import load_config

    case = catalog_of(ctx).get(name, ctx.artifact_dir)
    cfg = load_config(case.config).with_updates(compat="fixed", inference=SETTINGS)
    prepared = CaseData(case, base_config=cfg).prepared_fixed
    return CaseInputs(name, cfg, prepared, bool(case.has_projection))


def _moments(da: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    return da.mean(("chain", "draw")).values, da.std(("chain", "draw")).values


def compare(
    nuts: xr.DataTree,
    laplace: xr.DataTree,
    sle: xr.DataArray | None = None,
    limits: AgreementGate | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Figures of both posteriors and the gate's failure lines (empty: they agree)."""
    from fusion.inference.laplace import laplace_diagnostics
    from fusion.projection import weighted_quantile

    t = (limits or AgreementGate()).model_dump()
    pn, pl = nuts["posterior"], laplace["posterior"]
    members = [str(m) for m in pn["w"]["member"].values]
    mean_n, sd_n = _moments(pn["w"].sel(member=members))
    mean_l, sd_l = _moments(pl["w"].sel(member=members))
    # a member pinned at weight 0 or 1 by both fits (a concentrated posterior) has no spread to
    # measure a shift in: the unit is max(NUTS sd, floor), and its sd ratio is not gated
    spread = sd_n >= t["weight_sd_floor"]
    unit = np.maximum(sd_n, t["weight_sd_floor"])
    shift = np.abs(mean_l - mean_n) / unit
    ratio = np.where(spread, sd_l / np.where(spread, sd_n, 1.0), np.nan)
    messages: list[str] = []
    for m, s, r, gated in zip(members, shift, ratio, spread, strict=True):
        if not s <= t["weight_shift_sd_max"]:
            messages.append(f"w[{m}]: Laplace mean is {s:.2f} NUTS sd away (> {t['weight_shift_sd_max']:g})")
        if gated and not t["sd_ratio_min"] <= r <= t["sd_ratio_max"]:
            messages.append(f"w[{m}]: sd ratio Laplace/NUTS {r:.2f} outside [{t['sd_ratio_min']}, {t['sd_ratio_max']}]")
    figures: dict[str, Any] = {
        "members": members,
        "weights": {
            m: {"nuts_mean": float(a), "nuts_sd": float(b), "laplace_mean": float(c), "laplace_sd": float(d),
                "shift_sd": float(e), "sd_ratio": float(f)}
            for m, a, b, c, d, e, f in zip(members, mean_n, sd_n, mean_l, sd_l, shift, ratio, strict=True)
        },
        "max_weight_shift_sd": float(np.max(shift)),
        "nuts_draws": int(pn.sizes["chain"] * pn.sizes["draw"]),
        "weight_shift_mcse_sd": [
            float(e) for e in _shift_mcse(pn["w"].sel(member=members), pl["w"].sel(member=members)) / unit
        ],
        "sd_ratio_min": float(np.min(ratio[spread])) if spread.any() else None,
        "sd_ratio_max": float(np.max(ratio[spread])) if spread.any() else None,
        "members_pinned": [m for m, gated in zip(members, spread, strict=True) if not gated],
        "noise_parameters": {
            p: {"nuts_mean": float(pn[p].mean()), "nuts_sd": float(pn[p].std()),
                "laplace_mean": float(pl[p].mean()), "laplace_sd": float(pl[p].std())}
            for p in PARAMS
        },
        "pareto_k": laplace_diagnostics(laplace)["pareto_k"],
    }
    if sle is not None:
        sle = sle.sel(member=members)
        wm_n = (pn["w"].sel(member=members) * sle).sum("member").values.ravel()
        wm_l = (pl["w"].sel(member=members) * sle).sum("member").values.ravel()
        mix_n = float(weighted_quantile(sle.values, mean_n, 0.5)[0])
        mix_l = float(weighted_quantile(sle.values, mean_l, 0.5)[0])
        mix_sd = float(np.sqrt(np.sum(mean_n / mean_n.sum() * (sle.values - np.sum(mean_n * sle.values)) ** 2)))
        proj = {
            "weighted_mean_median_nuts": float(np.median(wm_n)),
            "weighted_mean_median_laplace": float(np.median(wm_l)),
            "weighted_mean_sd_nuts": float(np.std(wm_n)),
            "mixture_median_nuts": mix_n,
            "mixture_median_laplace": mix_l,
            "mixture_sd_nuts": mix_sd,
        }
        floor = t["projection_sd_floor_mm"]
        proj["weighted_mean_shift_sd"] = (abs(proj["weighted_mean_median_laplace"] - proj["weighted_mean_median_nuts"])
                                          / max(proj["weighted_mean_sd_nuts"], floor))
        proj["mixture_median_shift_sd"] = abs(mix_l - mix_n) / max(mix_sd, floor)
        for key, label in (("weighted_mean_shift_sd", "median of Σ w·SLE"), ("mixture_median_shift_sd", "weighted-mixture median")):
            if not proj[key] <= t["projection_shift_sd_max"]:
                messages.append(f"projection {label}: Laplace is {proj[key]:.2f} NUTS sd away (> {t['projection_shift_sd_max']:g})")
        figures["projection"] = proj
        figures["_wm"] = (wm_n, wm_l)
    return figures, messages


def _shift_mcse(nuts_w: xr.DataArray, laplace_w: xr.DataArray) -> np.ndarray:
    """Per member, the Monte-Carlo standard error of E_L[w] − E_N[w] (ArviZ's MCSE of each mean)."""
    import arviz_stats as azs

    return np.hypot(np.asarray(azs.mcse(nuts_w, method="mean")), np.asarray(azs.mcse(laplace_w, method="mean")))


def shift_interval(figures: dict[str, Any], level: float) -> Interval | None:
    """The largest |shift| over members and its interval, simultaneous over members (Bonferroni)."""
    weights, mcse = figures.get("weights"), figures.get("weight_shift_mcse_sd")
    if not weights or mcse is None:
        return None
    z = float(norm.ppf(1 - (1 - level) / (2 * len(weights))))
    shifts = [w["shift_sd"] for w in weights.values()]  # |E_L − E_N| / unit: already folded
    lows = [max(0.0, x - z * e) for x, e in zip(shifts, mcse)]
    highs = [x + z * e for x, e in zip(shifts, mcse)]
    draws = int(figures.get("nuts_draws", 0))
    return Interval(max(shifts), max(lows), max(highs), level, draws, f"normal on MCSE, Bonferroni over {len(weights)}")


def shift_plan(limits: AgreementGate, chains: int = SETTINGS["chains"], draws: int = SETTINGS["draws"]) -> Plan:
    """The weight-shift gate's looks, in NUTS draws over all chains: `draws` per chain first, `draws`
    more per chain each further look, up to `limits.max_draws` per chain."""
    first = chains * draws
    return Plan(first=first, batch=first, cap=chains * max(limits.max_draws, draws), alpha=limits.mc_alpha)


def agreement_gates(
    figures: dict[str, Any], limits: AgreementGate, decision: Decision | None = None
) -> list[dict[str, Any]]:
    """Weight shift (with its interval and verdict: `decision` where the check extended it, else one
    look on `figures` when its MCSE is known), the sd ratio's range and (cases with projection
    inputs) the projection shift."""
    proj = figures.get("projection")
    name = "max weight shift (NUTS sd)"
    if decision is not None:
        shift = decision.record(name, "NUTS sd")
    elif (interval := shift_interval(figures, 1 - 2 * limits.mc_alpha)) is not None:
        shift = decide_interval(interval, "≤", limits.weight_shift_sd_max).record(name, "NUTS sd")
    else:
        shift = gate_record(name, "≤", limits.weight_shift_sd_max, figures.get("max_weight_shift_sd"), "NUTS sd")
    return gates_of(
        shift,
        gate_record("min sd ratio (Laplace/NUTS)", "≥", limits.sd_ratio_min, figures.get("sd_ratio_min")),
        gate_record("max sd ratio (Laplace/NUTS)", "≤", limits.sd_ratio_max, figures.get("sd_ratio_max")),
        gate_record(
            "projection median shift (NUTS sd)",
            "≤",
            limits.projection_shift_sd_max,
            proj.get("weighted_mean_shift_sd") if isinstance(proj, dict) else None,
            "NUTS sd",
        ),
    )


def compare_case(
    inputs: CaseInputs, limits: AgreementGate | None = None
) -> tuple[dict[str, Any], list[str], dict[str, xr.DataTree]]:
    """Both fits on one case (through `OPS`), compared."""
    timings = {}
    traces = {}
    for method in ("nuts", "laplace"):
        start = time.perf_counter()
        traces[method] = OPS[method](inputs.cfg, inputs.prepared)
        timings[f"{method}_s"] = time.perf_counter() - start
    sle = None
    if inputs.has_projection:
        from fusion.projection import member_sle

        sle = member_sle(inputs.cfg, inputs.prepared.member_ids)
    figures, messages = compare(traces["nuts"], traces["laplace"], sle, limits)
    figures["timings"] = timings
    from fusion.diagnostics import convergence_gate, diagnose

    reference = diagnose(traces["nuts"], PARAMS)
    failures = convergence_gate(reference, warn=False)
    figures["nuts_convergence"] = {k: reference[k] for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences")}
    messages += [f"NUTS reference did not converge: {f['message']}" for f in failures.values()]
    return figures, messages, traces


def _decided(
    inputs: CaseInputs, limits: AgreementGate, progress: Callable[[str], None]
) -> tuple[dict[str, Any], list[str], Decision | None]:
    """(figures, failure lines, the weight-shift decision) of the look that decided it: both fits
    at the plan's draws per look (`shift_plan`), each look's fits made once. No decision when the
    first look has no MCSE to read (no member weights)."""
    chains = int(inputs.cfg.inference.chains)
    plan = shift_plan(limits, chains, int(inputs.cfg.inference.draws))
    looks: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def look(n: int) -> tuple[dict[str, Any], list[str]]:
        if n not in looks:
            cfg = inputs.cfg.with_updates(inference={"draws": n // chains})
            looks[n] = compare_case(replace(inputs, cfg=cfg), limits)[:2]
        return looks[n]

    if shift_interval(look(plan.first)[0], 0.5) is None:
        return *look(plan.first), None

    def measure(n: int, level: float) -> Interval:
        found = shift_interval(look(n)[0], level)  # the same members at every look, so never None here
        return found if found is not None else Interval(math.inf, 0.0, math.inf, level, n, "no MCSE")

    decision = sequential(plan, measure, "≤", limits.weight_shift_sd_max, progress)
    return *looks[max(looks)], decision


def run_check(ctx: CheckContext) -> CheckResult:
    """Laplace against NUTS on the context's case."""
    from fusion.config import config_hash

    name = ctx.case
    limits = ctx.gates.agreement
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    inputs = _load(name, ctx)
    ctx.progress(f"agreement[{name}]: NUTS {SETTINGS['chains']}×({SETTINGS['tune']}+{SETTINGS['draws']}) and Laplace")
    figures, messages, decision = _decided(inputs, limits, lambda line: ctx.progress(f"agreement[{name}]: {line}"))
    plot_agreement(figures, ctx.artifact_dir / "agreement.png")
    figures.pop("_wm", None)
    if not inputs.has_projection:
        figures["projection"] = "no projection inputs in this case: weights gated only"
    gates = agreement_gates(figures, limits, decision)
    # the weight shift is decided on its interval; every other failure line is a fail
    others = [m for m in messages if "Laplace mean is" not in m]
    status = "fail" if others else status_of(gates)
    return CheckResult(
        name="agreement",
        case=name,
        status=status,
        figures=figures,
        thresholds={
            "weight_shift": f"|E_L[w] − E_N[w]| ≤ {limits.weight_shift_sd_max:g} × max(NUTS sd, {limits.weight_sd_floor:g}), every member",
            "sd_ratio": f"sd_L/sd_N in [{limits.sd_ratio_min}, {limits.sd_ratio_max}], every member whose NUTS sd ≥ {limits.weight_sd_floor:g}",
            "projection": f"medians within {limits.projection_shift_sd_max:g} NUTS sd",
            "pareto_k": f"reported; ≤ {PARETO_K_GOOD} would make the Gaussian a reliable proposal",
        },
        gates=gates,
        messages=messages,
        plots=["agreement.png"],
        config_hash=config_hash(inputs.cfg),
        provenance={
            "config": str(inputs.cfg.source),
            "compat": "fixed",
            "settings": SETTINGS,
            "timings": figures["timings"],
        },
    )
