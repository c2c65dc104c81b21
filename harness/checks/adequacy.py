"""Check `adequacy`: does the noise model fit this case's data? (issue 20)

On one case (a bundled one or a `--case` folder) the noise model is fitted as the case's config
says (`compat: fixed`, its `likelihood.form` and sampler), then `fusion.adequacy` asks of the
posterior predictive, per stream:
- block-level PIT uniformity: the block PITs' ECDF inside ArviZ's simultaneous 1 − α band on
  the side that matters (too many PITs in the tails, or shifted: a predictive too narrow or
  biased); tiles at least `block_lengths` correlation lengths wide, so spatial correlation
  alone does not turn a real field red;
- regions and uncertainty bins: no grid box with a trend the members lack and no box or σ_obs
  bin over-dispersed, Bonferroni at α (the worst boxes are named);
- held-out coverage: every `holdout_every`-th tile is held out, the model refitted on the rest,
  and the held-out points' 1σ and 2σ predictive coverage may fall at most `coverage_tol_*`
  below nominal.
A predictive wider than the data (PITs crowding the middle, over-coverage) is reported, not
gated: it makes the weights less confident, not wrong. Under `likelihood.form: tempered` the
posterior is not a calibrated one (DESIGN.md, defect 6): everything is reported, nothing gated.

The false-alarm rate is estimated on data drawn from the model itself: the case's points and
design, every member's residual redrawn from N(0, σ_tot(θ̂)) at the fitted posterior mean θ̂
(the generative form), each replicate fitted by the Laplace fast path (`agreement` checks it
against NUTS; short NUTS chains where it finds no mode); quick: 30 replicates, full: 100. The likelihood-form sensitivity
(summary.json's `sensitivity`) is drawn beside the residual maps.

The false-alarm rate is the check's Monte-Carlo gate (`harness.verdict`): the share of model-drawn
data sets turned red, with its exact (Clopper–Pearson) interval, must stay at most
`max_false_alarm_rate`, or the case's verdicts above say more about the check than about the data.
Its replicates are the model-drawn data sets (data set k from seed (inference.seed, k) whatever
the count): undecided adds a batch as large as the suite's first, up to `max_replicates`, under
Pocock-type alpha spending over the looks. The other gates are point verdicts on the case's one
data set (there are no replicates of the observations).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.adequacy import (
    NOMINAL_1,
    NOMINAL_2,
    STREAM_NAMES,
    AdequacySettings,
    Assessment,
    assess,
    coverage,
    mixture_pit,
    sigma_tot2,
    subset,
    thin_draws,
    tile_keys,
)
from fusion.data.prepared import Prepared
from harness.cases import catalog_of
from harness.cases.data import CaseData
from harness.checks import CheckContext, CheckResult, gate_record, gates_of, status_of
from harness.gates import AdequacyGate
from harness.verdict import Decision, Interval, Plan, binomial, sequential

__all__ = ["OPS", "REPLICATES", "Evaluation", "fast_fit", "adequacy_gates", "evaluate", "false_alarm_decision",
           "false_alarm_interval", "false_alarms", "model_data", "run_check"]

REPLICATES: dict[str, int] = {"quick": 30, "full": 100}  # data drawn from the model, for the false-alarm rate (first look)
# (quick 30: the fewest clean data sets whose exact interval clears the bound 0.2 at the first look)
FALSE_ALARM = "false-alarm rate on data drawn from the model"


def _fit(cfg: Any, prepared: Prepared, settings: Any) -> Any:
    from fusion.inference.sampling import sample

    return sample(cfg, prepared, progressbar=False, settings=settings)


def fast_fit(cfg: Any, prepared: Prepared, settings: Any) -> Any:
    """The Laplace fast path; NUTS (2 × 300 draws) where L-BFGS-B stops short of the mode (about
    one model-drawn replicate in three on the example)."""
    from fusion.inference.laplace import LaplaceError
    from fusion.inference.sampling import sample

    try:
        return sample(cfg.with_updates(inference={"method": "laplace"}), prepared, progressbar=False, settings=settings)
    except LaplaceError:
        nuts = cfg.with_updates(inference={"method": "nuts", "draws": 300, "tune": 300, "chains": 2})
        return sample(nuts, prepared, progressbar=False, settings=settings)


#: How the check fits; a test replaces it (e.g. with the Laplace fast path) to keep seconds.
OPS: dict[str, Callable[..., Any]] = {"fit": _fit}


def settings_of(gate: AdequacyGate) -> AdequacySettings:
    return AdequacySettings(alpha=gate.alpha, block_lengths=gate.block_lengths, region_boxes=gate.region_boxes,
                            uncertainty_bins=gate.uncertainty_bins, n_simulations=1000)  # fmt: skip


@dataclass
class Evaluation:
    """One case's assessment, held-out coverage per stream and what the fit was."""

    assessment: Assessment
    heldout: dict[str, dict[str, float]]
    form: str
    theta_mean: np.ndarray
    correlations: dict[int, Any]
    gated: bool


@dataclass(frozen=True)
class NoiseFit:
    """What the case's `likelihood.form` fits, derived as `fusion run` derives it."""

    form: str
    settings: Any  # the form's NoiseSettings
    base: Any  # the base settings σ_tot uses (the predictive is judged on the points)
    sampled: Prepared  # the points the form samples: the case's own, or their block means under `blocks`
    correlations: dict[int, Any]

    def on(self, points: Prepared, min_valid: float) -> tuple[Any, Prepared]:
        """(settings, sampled points) for a subset of the case's points (the held-out refit): the
        blocks anew from the subset under `blocks`; every other form keeps the case's weights."""
        if self.form != "blocks":
            return self.settings, points
        from fusion.inference.likelihood import form_inputs

        settings, sampled, _ = form_inputs(self.base, self.form, points, self.correlations, min_valid)
        return settings, sampled


def noise_settings(cfg: Any, prepared: Prepared) -> NoiseFit:
    """The form's settings and points as `fusion run` has them (`fusion.pipeline.likelihood_setup`)."""
    from fusion.inference.noise import NoiseSettings
    from fusion.pipeline import likelihood_setup

    form, settings, sampled, correlations = likelihood_setup(cfg, prepared)
    return NoiseFit(form, settings, NoiseSettings.from_config(cfg), sampled, correlations or {})


def _heldout(cfg: Any, prepared: Prepared, noise: NoiseFit, found: Assessment, every: int, draws: int,
             fit: Callable[..., Any], sle: Any = None) -> dict[str, dict[str, float]]:  # fmt: skip
    """Every `every`-th tile of each stream held out, the model refitted on the rest: coverage of the held-out points."""
    layout = prepared.layout
    if layout is None:
        return {}
    held = np.zeros(prepared.n_points, dtype=bool)
    for s, name in STREAM_NAMES.items():
        sel = np.flatnonzero(prepared.stream == s)
        if sel.size == 0 or name not in found.record["streams"]:
            continue
        width = int(found.record["streams"][name]["blocks"]["width_cells"])
        keys = tile_keys(layout.pixel[sel], layout.block[sel], layout.grid_shape, width)
        _, tile = np.unique(keys, return_inverse=True)
        held[sel[tile % every == every // 2]] = True
    train, test = np.flatnonzero(~held), np.flatnonzero(held)
    if test.size == 0 or train.size == 0:
        return {}
    try:
        settings, sampled = noise.on(subset(prepared, train), cfg.likelihood.block_min_valid)
    except ValueError as exc:  # blocks: squares wider than the tiles are all cut by a held-out tile
        raise ValueError(f"held-out refit without 1 tile in {every}: {exc} among the training points") from None
    trace = fit(cfg, sampled, settings)
    theta, w = thin_draws(trace["posterior"], draws, prepared.member_ids)
    if (calibrated := _calibrated(cfg, sampled, trace, settings, sle)) is not None:
        w = calibrated(theta)  # the predictive users get (fusion.adequacy)
    pit = mixture_pit(subset(prepared, test), theta, w, noise.base)
    out = {}
    for s, name in STREAM_NAMES.items():
        pick = prepared.stream[test] == s
        if np.any(pick):
            out[name] = {**coverage(pit[pick]), "n_points": int(pick.sum())}
    return out


def _calibrated(
    cfg: Any, sampled: Prepared, trace: Any, settings: Any, sle: Any = None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The calibrated member weights `fusion run` gives these draws (`fusion.pipeline.calibrated_weights`),
    where the case has a projection to calibrate on (`sle`, else its files); None otherwise (the
    noise model's weights serve)."""
    from fusion.errors import InputError
    from fusion.pipeline import calibrated_weights
    from fusion.projection import member_sle

    if cfg.compat != "fixed" or cfg.likelihood.calibration == "off":
        return None
    if sle is None:
        try:
            sle = member_sle(cfg, sampled.member_ids)
        except InputError:  # no projection files: nothing to calibrate on
            return None
    return calibrated_weights(cfg, sampled, trace, settings, sle)


def evaluate(
    cfg: Any, prepared: Prepared, gate: AdequacyGate, *, fit: Callable[..., Any] | None = None, sle: Any = None
) -> Evaluation:
    """Fit (`OPS["fit"]`), assess in sample, refit without the held-out tiles, and their coverage.
    `sle` (every member's SLE) calibrates the predictive's weights where the config's projection
    files are not to be read (an in-memory case)."""
    fit = fit or OPS["fit"]
    config = settings_of(gate)
    noise = noise_settings(cfg, prepared)
    trace = fit(cfg, noise.sampled, noise.settings)
    theta, w = thin_draws(trace["posterior"], config.pit_draws, prepared.member_ids)
    calibrated = _calibrated(cfg, noise.sampled, trace, noise.settings, sle)
    w_predictive = None if calibrated is None else calibrated(theta)
    found = assess(prepared, theta, w, noise.base, config, seed=cfg.inference.seed, w_predictive=w_predictive)
    heldout = _heldout(cfg, prepared, noise, found, gate.holdout_every, config.pit_draws, fit, sle)
    post = trace["posterior"]
    from fusion.inference.parameters import PARAMS

    theta_mean = np.array([float(post[p].mean()) for p in PARAMS])
    return Evaluation(found, heldout, noise.form, theta_mean, noise.correlations, gated=noise.form != "tempered")


def _worst_p(entry: dict[str, Any]) -> float | None:
    groups = [*entry.get("regions", []), *entry.get("uncertainty_bins", [])]
    return min((g["p"] for g in groups), default=None)


def stream_figures(ev: Evaluation) -> dict[str, dict[str, Any]]:
    """Per stream: the gated figures and what the report shows of them."""
    out = {}
    for name, entry in ev.assessment.record["streams"].items():
        blocks = entry.get("blocks", {})
        held = ev.heldout.get(name, {})
        out[name] = {
            "n_points": entry["n_points"],
            "block_width_cells": blocks.get("width_cells"),
            "correlation_length_cells": blocks.get("correlation_length_cells"),
            "n_blocks": blocks.get("n_blocks"),
            "ecdf_tails_excursion": blocks.get("tails_excursion"),
            "ecdf_centre_excursion": blocks.get("centre_excursion"),
            "worst_p": _worst_p(entry),
            "heldout_1sigma": held.get("1sigma"),
            "heldout_2sigma": held.get("2sigma"),
            "heldout_points": held.get("n_points"),
            "insample_1sigma": entry["coverage"]["1sigma"],
            "insample_2sigma": entry["coverage"]["2sigma"],
            "residual_sd_mixture": entry["residuals"]["mixture"]["sd"],
            "residual_sd_top_member": entry["residuals"]["top_member"]["sd"],
            "failures": entry.get("failures", []),
            "worst_regions": [f"{r['where']}: {r['kind']} (adjusted p {min(r['p'], r['p_under_adjusted']):.2g})"
                              for r in entry.get("regions", [])[:3]],
        }
    return out


def adequacy_gates(figures: dict[str, Any], gate: AdequacyGate) -> list[dict[str, Any]]:
    """Per stream: ECDF tails excursion, worst regional/σ-bin p, held-out 1σ and 2σ coverage (none when not gated)."""
    if not figures.get("gated", True):
        return []
    found = []
    for name, f in figures.get("streams", {}).items():
        found += [
            gate_record(f"{name}: block PIT ECDF outside band (tails/bias side)", "≤", 0.0, f.get("ecdf_tails_excursion")),
            gate_record(f"{name}: worst region / σ_obs bin p (Bonferroni)", "≥", gate.alpha, f.get("worst_p")),
            gate_record(f"{name}: held-out 1σ coverage", "≥", round(NOMINAL_1 - gate.coverage_tol_1sigma, 6), f.get("heldout_1sigma")),
            gate_record(f"{name}: held-out 2σ coverage", "≥", round(NOMINAL_2 - gate.coverage_tol_2sigma, 6), f.get("heldout_2sigma")),
        ]  # fmt: skip
    return gates_of(*found)


def model_data(prepared: Prepared, theta: np.ndarray, base: Any, rng: np.random.Generator) -> Prepared:
    """The case's points with every member's residual redrawn from the model's generative form,
    r_mi ~ N(0, σ_tot,i(θ)) independently: y and the design kept, F = y − r."""
    from dataclasses import replace

    sd = np.sqrt(sigma_tot2(prepared, theta[None], base))[0]
    y = np.asarray(prepared.y_obs, dtype=np.float64)
    return replace(prepared, F=y[None] - sd[None] * rng.standard_normal((prepared.n_members, prepared.n_points)))


def _alarm(cfg: Any, prepared: Prepared, ev: Evaluation, gate: AdequacyGate, base: Any, seed: int, k: int) -> str | None:
    """The first gate that data set k drawn from the model turns red (None: every gate green)."""
    data = model_data(prepared, ev.theta_mean, base, np.random.default_rng([seed, k]))
    rep = evaluate(cfg, data, gate, fit=fast_fit)
    red = [g["figure"] for g in adequacy_gates({"gated": True, "streams": stream_figures(rep)}, gate) if not g["passed"]]
    return red[0] if red else None


def false_alarm_interval(alarms: list[bool], level: float) -> Interval:
    """The share of model-drawn data sets turned red and its exact (Clopper–Pearson) interval."""
    return binomial(int(sum(alarms)), len(alarms), level)


def false_alarm_decision(cfg: Any, prepared: Prepared, ev: Evaluation, gate: AdequacyGate, plan: Plan, seed: int = 0,
                         progress: Callable[[str], None] = print) -> tuple[Decision, dict[str, Any]]:  # fmt: skip
    """The false-alarm rate decided against `gate.max_false_alarm_rate` in batches of model-drawn data
    sets (`plan`; the ones drawn at an earlier look are kept), and the figures of the last look."""
    from scipy.stats import beta

    from fusion.inference.noise import NoiseSettings
    from harness.progress import ReplicateBar

    base = NoiseSettings.from_config(cfg)  # σ_tot of the generative form
    reasons: list[str | None] = []

    def measure(n: int, level: float) -> Interval:
        bar = ReplicateBar("adequacy: false alarms", n)
        for k in range(len(reasons), n):
            reasons.append(_alarm(cfg, prepared, ev, gate, base, seed, k))
            bar.update(k + 1)
        bar.close()
        return false_alarm_interval([r is not None for r in reasons[:n]], level)

    decision = sequential(plan, measure, "≤", gate.max_false_alarm_rate, lambda m: progress(f"adequacy false alarms: {m}"))
    n = decision.interval.n
    alarms = sum(r is not None for r in reasons[:n])
    progress(f"adequacy: {alarms} of {n} data sets drawn from the model turned red")
    upper = float(beta.ppf(0.95, alarms + 1, n - alarms)) if n > alarms else 1.0
    return decision, {"replicates": n, "alarms": alarms, "rate": alarms / n, "upper_95": upper,
                      "first_reasons": [r for r in reasons[:n] if r][:3], "method": "laplace (NUTS where it finds no mode)"}  # fmt: skip


def false_alarms(cfg: Any, prepared: Prepared, ev: Evaluation, gate: AdequacyGate, replicates: int, seed: int = 0,
                 progress: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """The share of `replicates` data sets drawn from the model itself that the gates turn red
    (`fast_fit`), with a 95 % Clopper–Pearson upper bound (one look, no verdict)."""
    plan = Plan(first=replicates, batch=replicates, cap=replicates)
    return false_alarm_decision(cfg, prepared, ev, gate, plan, seed, progress)[1]


def _sensitivity_plot(case: Any, cfg: Any, prepared: Prepared, ev: Evaluation, folder: Path) -> str | None:
    """`sensitivity.png` (fusion.figures.likelihood) of the case: weights and projection under every form."""
    if not case.has_projection:
        return None
    from fusion.inference.likelihood import sensitivity
    from fusion.inference.noise import NoiseSettings
    from fusion.io import write_png
    from fusion.figures.likelihood import plot_sensitivity
    from fusion.projection import member_sle

    from fusion.inference.likelihood import stream_correlations

    sle = np.asarray(member_sle(cfg, prepared.member_ids).sel(member=list(prepared.member_ids)).values, dtype=np.float64)
    if not ev.correlations:
        try:
            ev.correlations = stream_correlations(prepared, cfg.likelihood.correlation_length, seed=cfg.inference.seed)
        except ValueError:
            pass
    spec = cfg.projection
    table = sensitivity(prepared, NoiseSettings.from_config(cfg), ev.correlations or None, sle,
                        (spec.lower_q, 0.5, spec.upper_q), seed=cfg.inference.seed)  # fmt: skip
    write_png(folder / "sensitivity.png", plot_sensitivity({"sensitivity": table, "likelihood": {"form": ev.form}}))
    return "sensitivity.png"


def run_check(ctx: CheckContext) -> CheckResult:
    """The posterior predictive check on one case, its false-alarm rate on data drawn from the model."""
    from fusion.figures.adequacy import residuals_png
    from fusion.config import config_hash, load_config
    from fusion.io import write_bytes, write_json
    name = ctx.case
    gate: AdequacyGate = ctx.gates.adequacy
    out = Path(ctx.artifact_dir)
    out.mkdir(parents=True, exist_ok=True)
    case = catalog_of(ctx).get(name, out)
    cfg = load_config(case.config).with_updates(compat="fixed")
    prepared = CaseData(case, base_config=cfg).prepared_fixed
    first = REPLICATES[ctx.suite]
    ctx.progress(f"adequacy[{name}]: fit ({cfg.likelihood.form}), held-out refit, {first} model-drawn replicates "
                 f"(more, up to {max(gate.max_replicates, first)}, while the false-alarm rate is undecided)")  # fmt: skip
    ev = evaluate(cfg, prepared, gate)
    write_bytes(out / "residuals.png", residuals_png(prepared, ev.assessment))
    write_json(out / "fit.json", {**ev.assessment.record, "heldout": ev.heldout, "likelihood_form": ev.form})
    plots = ["residuals.png"]
    if (extra := _sensitivity_plot(case, cfg, prepared, ev, out)) is not None:
        plots.append(extra)
    plan = Plan(first=first, batch=first, cap=max(gate.max_replicates, first), alpha=gate.mc_alpha)
    decision, alarms = false_alarm_decision(cfg, prepared, ev, gate, plan, seed=cfg.inference.seed, progress=ctx.progress)
    iv = decision.interval
    alarms |= {"interval": [iv.lower, iv.upper], "level": iv.level, "verdict": decision.verdict,
               "looks": [list(look) for look in decision.looks]}  # fmt: skip
    figures: dict[str, Any] = {"likelihood_form": ev.form, "gated": ev.gated, "top_member": ev.assessment.record["top_member"],
                               "streams": stream_figures(ev), "false_alarm": alarms}  # fmt: skip
    gates = adequacy_gates(figures, gate) + ([decision.record(FALSE_ALARM)] if ev.gated else [])
    failed = [g for g in gates if not g["passed"]]
    messages = [f"{g['figure']}: {g['value']:.4g} (bound {g['threshold']})" for g in failed if "verdict" not in g]
    if ev.gated and decision.verdict != "pass":
        messages.append(f"{FALSE_ALARM}: {alarms['alarms']}/{iv.n}, {iv.level:.1%} interval [{iv.lower:.3f}, {iv.upper:.3f}] "
                        + ("> " if decision.verdict == "fail" else "holds the bound ") + f"{gate.max_false_alarm_rate:g}"
                        + (f"; about {decision.needed} data sets would decide (cap {decision.cap})" if decision.needed else ""))  # fmt: skip
    if ev.gated:
        messages += [f for s in figures["streams"].values() for f in s["failures"]]
    else:
        messages.append("(reported, not gated) likelihood.form tempered is not a calibrated posterior (DESIGN.md defect 6): "
                        "its predictive is judged, not gated; choose `effective` to gate the noise model")  # fmt: skip
        messages += [f"(reported) {f}" for s in figures["streams"].values() for f in s["failures"]]
    for s_name, s in figures["streams"].items():
        if (s["insample_1sigma"] or 0) > NOMINAL_1 + gate.coverage_tol_1sigma:
            messages.append(f"(reported, not gated) {s_name}: predictive wider than the data (1σ coverage "
                            f"{s['insample_1sigma']:.2f}, residual sd {s['residual_sd_mixture']:.2f})")  # fmt: skip
    for s_name, s in figures["streams"].items():  # where to look first, failing or not
        if s["worst_regions"]:
            messages.append(f"(reported) {s_name} worst regions: " + "; ".join(s["worst_regions"]))
    nominal = min(1.0, 2 * gate.alpha)
    messages.append(f"(reported) false-alarm rate on data drawn from the model: {alarms['alarms']}/{alarms['replicates']} "
                    f"(95 % upper bound {alarms['upper_95']:.2f}; Bonferroni design ≤ {nominal:g} before the coverage gates)")  # fmt: skip
    return CheckResult(
        name="adequacy",
        case=name,
        status=status_of(gates),
        figures=figures,
        thresholds={**gate.model_dump(), "nominal_1sigma": NOMINAL_1, "nominal_2sigma": NOMINAL_2,
                    "design_false_alarm_bound": nominal},  # fmt: skip
        gates=gates,
        messages=messages,
        plots=plots,
        config_hash=config_hash(cfg),
        provenance={"config": str(cfg.source), "compat": "fixed", "form": ev.form, "method": cfg.inference.method,
                    "pit_draws": ev.assessment.record["pit_draws"]},  # fmt: skip
    )
