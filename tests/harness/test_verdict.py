"""harness.verdict: intervals, three-valued verdicts and the alpha-spending stopping rule.

Each statistical gate's interval is planted with its true value exactly at the bound (20 seeded
repetitions, the gate's own plan and cap): most end `undecided` at the cap and `pass` comes up
no more often than α. Values clearly on either side decide at the first look. Synthetic
replicates, the verdict layer directly: no sampler runs here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.checks.stability import StabilitySettings, max_sd_interval
from harness.verdict import Plan, binomial, bootstrap, decide, normal, sd_chi2, sequential, worst

REPS = 20


def test_plan_spends_alpha_over_looks_and_ends_at_the_cap() -> None:
    plan = Plan(first=5, batch=5, cap=40, alpha=0.05)
    assert plan.sizes() == [5, 10, 15, 20, 25, 30, 35, 40]
    levels = [plan.level(n, prev) for n, prev in zip(plan.sizes(), [0, *plan.sizes()[:-1]])]
    assert math.isclose(sum((1 - lv) / 2 for lv in levels), 0.05)  # the whole α, per side, over the looks
    assert all(0.95 < lv < 1 for lv in levels)
    assert Plan(first=40, batch=10, cap=60).sizes() == [40, 50, 60]
    with pytest.raises(ValueError, match="bad sequential plan"):
        Plan(first=10, batch=5, cap=5)


def test_decide_margin_in_half_widths_and_projected_replicates() -> None:
    clear = decide(normal(0.5, 0.1, 0.95, n=10), "≤", 1.0)
    assert clear.verdict == "pass" and clear.margin == pytest.approx(0.5 / (1.959964 * 0.1), rel=1e-5)
    beyond = decide(normal(1.5, 0.1, 0.95, n=10), "≤", 1.0)
    assert beyond.verdict == "fail" and beyond.margin < -1
    close = decide(normal(0.9, 0.1, 0.95, n=10), "≤", 1.0)
    assert close.verdict == "undecided" and -1 <= close.margin <= 1
    assert close.needed == math.ceil(10 * (1.959964 * 0.1 / 0.1) ** 2)  # half-width ∝ 1/√n
    assert decide(normal(0.9, 0.1, 0.95, n=10), "≥", 1.0).verdict == "undecided"
    assert decide(binomial(45, 50), "≥", 0.7).verdict == "pass"
    record = close.record("x", "units")
    assert record["passed"] is False and record["verdict"] == "undecided" and record["interval"][0] < 1.0 < record["interval"][1]
    assert worst(["pass", "undecided"]) == "undecided" and worst(["undecided", "fail"]) == "fail" and worst(["pass"]) == "pass"


def test_intervals_are_the_exact_ones_where_they_exist() -> None:
    from scipy.stats import binomtest, chi2

    iv = binomial(7, 20, 0.9)
    ci = binomtest(7, 20).proportion_ci(0.9, method="exact")
    assert (iv.lower, iv.upper) == (ci.low, ci.high) and iv.method == "Clopper–Pearson"
    x = np.random.default_rng(0).normal(size=12)
    iv = sd_chi2(x, 0.95)
    s = x.std(ddof=1)
    assert iv.upper == pytest.approx(s * math.sqrt(11 / chi2.ppf(0.025, 11)))
    same = bootstrap(x, lambda a: float(np.mean(a)), 0.95, seed=3)
    assert same == bootstrap(x, lambda a: float(np.mean(a)), 0.95, seed=3)  # seeded: the same bits
    flat = bootstrap(np.zeros(6), lambda a: float(np.std(a)), seed=1)
    assert (flat.lower, flat.upper) == (0.0, 0.0)


def _outcomes(plan: Plan, measure_for_rep, comparison: str, bound: float) -> list[tuple[str, int]]:
    out = []
    for rep in range(REPS):
        d = sequential(plan, measure_for_rep(rep), comparison, bound)
        out.append((d.verdict, d.interval.n))
    return out


def _assert_at_bound(outcomes: list[tuple[str, int]], plan: Plan) -> None:
    verdicts = [v for v, _ in outcomes]
    assert verdicts.count("pass") <= plan.alpha * REPS, verdicts
    undecided_at_cap = sum(v == "undecided" and n == plan.cap for v, n in outcomes)
    assert undecided_at_cap > REPS / 2, verdicts


# --- stability: the largest per-member σ across seeds, χ² per member ----------------------------


def _seed_table(rep: int, sd_top: float, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1000 + rep)
    sds = np.array([sd_top, sd_top / 4, sd_top / 8, 1e-4, 0.0])
    return pd.DataFrame(0.2 + rng.normal(size=(rows, 5)) * sds, columns=[f"run{i}" for i in range(1, 6)])


def _stability(sd_top: float):
    st = StabilitySettings()
    plan = st.plan()

    def for_rep(rep: int):
        table = _seed_table(rep, sd_top, plan.cap)
        return lambda n, level: max_sd_interval(table.iloc[:n], level)

    return plan, st.max_sd, for_rep


def test_stability_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    plan, bound, for_rep = _stability(StabilitySettings().max_sd)
    _assert_at_bound(_outcomes(plan, for_rep, "≤", bound), plan)


@pytest.mark.parametrize(("factor", "verdict"), [(0.1, "pass"), (10.0, "fail")])
def test_stability_clearly_on_one_side_decides_in_the_first_batch(factor: float, verdict: str) -> None:
    plan, bound, for_rep = _stability(StabilitySettings().max_sd * factor)
    assert _outcomes(plan, for_rep, "≤", bound) == [(verdict, plan.first)] * REPS


# --- coverage: calibration error of pooled held-out shares, bootstrap over replicates ------------


def _coverage(shift: float):
    from harness.checks.coverage import calibration_interval
    from harness.gates import CoverageGate

    gate = CoverageGate()
    plan = Plan(first=40, batch=40, cap=gate.max_replicates, alpha=gate.mc_alpha)

    def for_rep(rep: int):
        rng = np.random.default_rng(2000 + rep)
        held = np.full(plan.cap, 200)
        # the true 1σ share is off nominal by `shift` (2σ on nominal): the true error is `shift`
        c1 = rng.binomial(held, 0.6827 + shift)
        c2 = rng.binomial(held, 0.9545)
        return lambda n, level: calibration_interval(c1[:n], c2[:n], held[:n], level, seed=0)

    return plan, gate.max_calibration_error, for_rep


def test_coverage_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    plan, bound, for_rep = _coverage(0.05)
    _assert_at_bound(_outcomes(plan, for_rep, "≤", bound), plan)


@pytest.mark.parametrize(("shift", "verdict"), [(0.0, "pass"), (0.12, "fail")])
def test_coverage_clearly_on_one_side_decides_in_the_first_batch(shift: float, verdict: str) -> None:
    plan, bound, for_rep = _coverage(shift)
    assert _outcomes(plan, for_rep, "≤", bound) == [(verdict, plan.first)] * REPS


# --- agreement: the largest weight shift in NUTS sd, normal on both means' MCSE -----------------


def _agreement(true_top: float):
    """Three members, the first's true shift `true_top`; the MCSE of each shift falls as 1/√draws."""
    from harness.checks.agreement import shift_interval, shift_plan
    from harness.gates import AgreementGate

    gate = AgreementGate()
    plan = shift_plan(gate)  # 4 chains × 1,000 draws first, up to 4 × max_draws

    def for_rep(rep: int):
        rng = np.random.default_rng(3000 + rep)
        truth, noise = np.array([true_top, 0.3, 0.1]), rng.normal(size=(plan.cap // plan.batch, 3))

        def measure(n: int, level: float):
            mcse = np.full(3, 0.05 * np.sqrt(plan.first / n))
            look = n // plan.batch - 1  # each look's fits are new runs: their own errors
            shifts = np.abs(truth + noise[look] * mcse)
            figures = {"weights": {f"m{i}": {"shift_sd": float(x)} for i, x in enumerate(shifts)},
                       "weight_shift_mcse_sd": list(mcse), "nuts_draws": n}
            return shift_interval(figures, level)

        return measure

    return plan, gate.weight_shift_sd_max, for_rep


def test_agreement_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    plan, bound, for_rep = _agreement(1.0)
    assert plan.cap > plan.first
    _assert_at_bound(_outcomes(plan, for_rep, "≤", bound), plan)


@pytest.mark.parametrize(("shift", "verdict"), [(0.2, "pass"), (2.0, "fail")])
def test_agreement_clearly_on_one_side_decides_in_the_first_batch(shift: float, verdict: str) -> None:
    plan, bound, for_rep = _agreement(shift)
    assert _outcomes(plan, for_rep, "≤", bound) == [(verdict, plan.first)] * REPS


# --- sbc: the largest rank non-uniformity w, non-central χ² per quantity -------------------------


def _sbc(w_top: float):
    from harness.checks.sbc import QUANTITIES, SBCGate, rank_w_interval
    from harness.gates import SBCRanks

    ranks, bins = SBCRanks(), SBCGate().bins
    plan = Plan(first=200, batch=200, cap=ranks.max_replicates, alpha=ranks.mc_alpha)
    # the first quantity's bins alternate (1 ± w)/B, so its w is exactly w_top; the others are uniform
    tilt = np.where(np.arange(bins) % 2 == 0, 1.0, -1.0)
    probs = (1.0 + w_top * tilt) / bins

    def for_rep(rep: int):
        rng = np.random.default_rng(4000 + rep)
        first = (rng.choice(bins, size=plan.cap, p=probs) + rng.uniform(size=plan.cap)) / bins
        pit = np.column_stack([first, rng.uniform(size=(plan.cap, len(QUANTITIES) - 1))])
        return lambda n, level: rank_w_interval(pit[:n], bins, level)

    return plan, ranks.max_rank_w, for_rep


def test_sbc_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    from harness.gates import SBCRanks

    plan, bound, for_rep = _sbc(SBCRanks().max_rank_w)
    _assert_at_bound(_outcomes(plan, for_rep, "≤", bound), plan)


@pytest.mark.parametrize(("w_top", "verdict"), [(0.0, "pass"), (1.0, "fail")])
def test_sbc_clearly_on_one_side_decides_in_the_first_batch(w_top: float, verdict: str) -> None:
    plan, bound, for_rep = _sbc(w_top)
    assert _outcomes(plan, for_rep, "≤", bound) == [(verdict, plan.first)] * REPS


# --- adequacy: the false-alarm rate on model-drawn data, Clopper–Pearson --------------------------


def _adequacy(rate: float):
    from harness.checks.adequacy import REPLICATES, false_alarm_interval
    from harness.gates import AdequacyGate

    gate = AdequacyGate()
    first = REPLICATES["quick"]
    plan = Plan(first=first, batch=first, cap=gate.max_replicates, alpha=gate.mc_alpha)

    def for_rep(rep: int):
        alarms = list(np.random.default_rng(5000 + rep).uniform(size=plan.cap) < rate)
        return lambda n, level: false_alarm_interval(alarms[:n], level)

    return plan, gate.max_false_alarm_rate, for_rep


def test_adequacy_false_alarms_at_the_bound_are_undecided_at_the_cap_and_rarely_pass() -> None:
    from harness.gates import AdequacyGate

    plan, bound, for_rep = _adequacy(AdequacyGate().max_false_alarm_rate)
    _assert_at_bound(_outcomes(plan, for_rep, "≤", bound), plan)


def test_adequacy_false_alarms_clearly_above_fail_in_the_first_batch() -> None:
    plan, bound, for_rep = _adequacy(0.9)
    assert _outcomes(plan, for_rep, "≤", bound) == [("fail", plan.first)] * REPS


def test_adequacy_without_false_alarms_passes_in_the_first_batch() -> None:
    """The quick suite's first look, 30 data sets with no alarm, clears 0.2 (ten could not: their
    exact interval reaches 0.38)."""
    plan, bound, for_rep = _adequacy(0.0)
    assert _outcomes(plan, for_rep, "≤", bound) == [("pass", plan.first)] * REPS


# --- perfect_model: weighted coverage (Clopper–Pearson) and CRPS ratio (bootstrap) over (member, draw) pairs


def _perfect_model(coverage: float, crps_factor: float, spread: float = 0.3):
    """Five members, three inside the unweighted range (bound 2/5); each (member, draw) pair inside
    the weighted range with chance `coverage`, its weighted CRPS the unweighted one × N(crps_factor, spread)."""
    from harness.checks.perfect_model import draw_plan, perfect_model_decisions
    from harness.gates import PerfectModelGate

    gate, members = PerfectModelGate(), 5
    plan = draw_plan(gate, members)

    def for_rep(rep: int):
        rng = np.random.default_rng(6100 + rep)
        unweighted = np.tile(np.linspace(20.0, 60.0, members), plan.cap // members)
        records = [{"member": f"m{i % members}", "draw": i // members, "inside_unweighted": i % members < 3,
                    "inside": bool(hit), "crps_unweighted": u, "crps": u * f}
                   for i, (hit, u, f) in enumerate(zip(rng.uniform(size=plan.cap) < coverage, unweighted,
                                                       rng.normal(crps_factor, spread, size=plan.cap), strict=True))]
        return lambda: perfect_model_decisions(lambda n: records[:n], members, gate, seed=0)

    return plan, for_rep


def _decided(plan: Plan, for_rep, which: int) -> list[tuple[str, int]]:
    return [(d.verdict, d.interval.n) for d in (for_rep(rep)()[which] for rep in range(REPS))]


def test_perfect_model_coverage_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    """At the bound the plan passes 2.3 % of the time (4000 repetitions, exact intervals): one pass
    in 20 is within α, two happen about once in twelve seed sets."""
    plan, for_rep = _perfect_model(coverage=0.4, crps_factor=0.5)
    _assert_at_bound(_decided(plan, for_rep, 0), plan)


@pytest.mark.parametrize(("coverage", "verdict"), [(0.95, "pass"), (0.0, "fail")])
def test_perfect_model_coverage_clearly_on_one_side_decides_in_the_first_batch(coverage: float, verdict: str) -> None:
    plan, for_rep = _perfect_model(coverage=coverage, crps_factor=0.5)
    assert _decided(plan, for_rep, 0) == [(verdict, plan.first)] * REPS


def test_perfect_model_crps_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    plan, for_rep = _perfect_model(coverage=0.95, crps_factor=1.0)
    _assert_at_bound(_decided(plan, for_rep, 1), plan)


@pytest.mark.parametrize(("factor", "verdict"), [(0.5, "pass"), (2.0, "fail")])
def test_perfect_model_crps_clearly_on_one_side_decides_in_the_first_batch(factor: float, verdict: str) -> None:
    plan, for_rep = _perfect_model(coverage=0.95, crps_factor=factor)
    assert _decided(plan, for_rep, 1) == [(verdict, plan.first)] * REPS


# --- drift: the largest shift of the fresh runs' mean from the baseline, in the first look's MCSE ----


def _drift(shift: float, identical: bool = False):
    """Three sampled quantities with MCSE 0.01 on every run; the first one's fresh runs shifted by
    `shift` × √(mcse² + mcse²) from the baseline's posterior mean (`identical`: the first fresh run
    reproduces the baseline bit for bit, as an unchanged FUSION at the case's seed does)."""
    from harness.checks.drift import sampled_decision, sampled_plan
    from harness.gates import DriftGate

    gate, mcse = DriftGate(), 0.01
    plan = sampled_plan(gate)
    truth = np.array([0.5, 0.3, 0.2])

    def for_rep(rep: int):
        rng = np.random.default_rng(7000 + rep)
        base = truth + rng.normal(size=3) * mcse
        moved = truth + np.array([shift * math.hypot(mcse, mcse), 0.0, 0.0])
        runs = [moved + rng.normal(size=3) * mcse for _ in range(plan.cap)]
        if identical:
            runs[0] = base
        baseline = {f"q{i}": (float(b), mcse) for i, b in enumerate(base)}
        fresh = [{f"q{i}": (float(a), mcse) for i, a in enumerate(run)} for run in runs]
        return lambda: sampled_decision(baseline, lambda n: fresh[:n], gate)

    return plan, gate.stat_k, for_rep


def test_drift_at_the_bound_is_undecided_at_the_cap_and_rarely_passes() -> None:
    from harness.gates import DriftGate

    plan, _, for_rep = _drift(DriftGate().stat_k)
    outcomes = [(d.verdict, d.interval.n) for d in (for_rep(rep)() for rep in range(REPS))]
    _assert_at_bound(outcomes, plan)


def test_drift_clearly_beyond_fails_and_an_unchanged_rerun_passes_in_the_first_batch() -> None:
    plan, _, beyond = _drift(12.0)
    assert [(d.verdict, d.interval.n) for d in (beyond(rep)() for rep in range(REPS))] == [("fail", 1)] * REPS
    plan, _, same = _drift(0.0, identical=True)
    assert [(d.verdict, d.interval.n) for d in (same(rep)() for rep in range(REPS))] == [("pass", 1)] * REPS


def test_drift_without_a_shift_passes_on_fresh_seeds_mostly_at_the_first_look() -> None:
    """A fresh run at another stream, no true shift: its z is N(0, 1) in size, and one run clears a
    bound of 4 only when every quantity's |z| is below 4 less the interval's half-width (about 1.8);
    the rest pass after a further batch."""
    plan, _, for_rep = _drift(0.0)
    outcomes = [(d.verdict, d.interval.n) for d in (for_rep(rep)() for rep in range(REPS))]
    assert all(v == "pass" for v, _ in outcomes), outcomes
    assert sum(n == 1 for _, n in outcomes) > REPS / 2, outcomes
