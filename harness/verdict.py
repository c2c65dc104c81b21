"""Three-valued verdicts for gates on Monte-Carlo estimates, and when to add replicates.

A gate that compares an estimate from a few seeds or replicates with a bound is a coin flip
when the estimate sits near the bound. Here each gated figure carries an interval for its
Monte-Carlo uncertainty, and the verdict is

- `pass`: the whole interval is on the good side of the bound;
- `fail`: the whole interval is beyond it;
- `undecided`: the bound is inside the interval. The check adds replicates (or seeds) in
  fixed, seeded batches and looks again, up to its cap; still undecided at the cap is its own
  status, which fails `harness run` unless `--allow-undecided`.

Intervals (`Interval`), exact where an exact one exists:
- `binomial`: a count of k in n, Clopper–Pearson (`scipy.stats.binomtest(...).proportion_ci`);
- `sd_chi2`: a standard deviation from normal values, the χ² interval of (n−1)s²/σ²;
- `normal`: an estimate with a standard error (a z or a mean of many replicates);
- `rank_divergence`: how far a histogram of n values is from uniform, Cohen's w = √(B·Σ(π_b − 1/B)²),
  from Pearson's χ² statistic X over B bins: X is (approximately, for alternatives near uniform)
  non-central χ² with B − 1 degrees of freedom and non-centrality n·w², and the interval inverts
  its CDF in the non-centrality (`scipy.special.chndtr`, `scipy.stats.ncx2`'s CDF);
- `largest`: the largest of several estimates (the worst quantity, member or stream) from their
  intervals: its lower end the largest lower end at the Bonferroni level over the estimates (a
  `fail` needs one of them clearly beyond), its upper end the largest upper end at the look's
  own level (a `pass` needs every one clear, so the one at the bound alone decides its error);
- `bootstrap`: anything else, percentile bootstrap over replicates or seeds
  (`scipy.stats.bootstrap`, a fixed `seed`: the same replicates give the same bits).

Stopping rule (`Plan`, `sequential`): a group-sequential design with Lan–DeMets alpha
spending, Pocock-type spending function α(t) = α·ln(1 + (e − 1)·t), t = n/cap the information
fraction of a look at n replicates. Look j spends α_j = α(t_j) − α(t_{j−1}) on each side: the
interval shown at that look is the two-sided 1 − 2·α_j interval, a `pass` there needs its upper
(for a "≤" gate) below the bound and a `fail` its lower above. By the union bound over looks,
the chance of `pass` when the true value is at (or beyond) the bound is at most α, and of
`fail` when it is at (or inside) the bound at most α, however many looks are taken. Pocock-type
spending (rather than O'Brien–Fleming's, which spends almost nothing early) lets a clear value
decide at the first look. Several gates on the same replicates (`sequential_gates`) are each
their own such test: a gate keeps the look that settled it, and no replicates are added once one
has failed (stopping early never raises an error rate). The caps bound the cost; `needed`
projects, from the interval's width (∝ 1/√n), how many replicates would decide.

Use (the whole API):

    from harness.verdict import Plan, binomial, decide, sequential

    # one look, on what is there
    d = decide(binomial(k=45, n=50, level=0.95), "≥", 0.7)
    d.verdict, d.margin, d.needed                 # "pass", 1.69 (half-widths), None
    decide(binomial(k=41, n=50), "≥", 0.7)        # "undecided", margin 0.89, needed 63

    # extend in batches: measure(n, level) computes (or reads back) replicates 0..n-1
    plan = Plan(first=20, batch=20, cap=100, alpha=0.05)
    d = sequential(plan, lambda n, level: binomial(hits(n), n, level), "≥", 0.7)
    record = d.record("coverage", "share")        # a `gate_record` with the interval and verdict
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "Decision",
    "Interval",
    "Plan",
    "Verdict",
    "binomial",
    "bootstrap",
    "decide",
    "largest",
    "normal",
    "rank_divergence",
    "sd_chi2",
    "sequential",
    "sequential_gates",
    "worst",
]

Verdict = Literal["pass", "fail", "undecided"]
Comparison = Literal["≤", "≥"]


@dataclass(frozen=True)
class Interval:
    """An estimate and its two-sided interval at `level` from `n` replicates, and how it was made."""

    estimate: float
    lower: float
    upper: float
    level: float
    n: int
    method: str


def binomial(k: int, n: int, level: float = 0.95) -> Interval:
    """k successes in n trials: the share and its exact (Clopper–Pearson) interval."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return Interval(k / n, float(ci.low), float(ci.high), level, int(n), "Clopper–Pearson")


def sd_chi2(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """The sample standard deviation (ddof 1) of normal values and its χ² interval:
    (n−1)s²/σ² is χ² with n−1 degrees of freedom."""
    from scipy.stats import chi2

    x = np.asarray(values, dtype=float)
    n = x.size
    s = float(x.std(ddof=1))
    tail = (1 - level) / 2
    lower = s * math.sqrt((n - 1) / chi2.ppf(1 - tail, n - 1))
    upper = s * math.sqrt((n - 1) / chi2.ppf(tail, n - 1))
    return Interval(s, lower, upper, level, n, "χ² (sd)")


def normal(estimate: float, se: float, level: float = 0.95, n: int = 0) -> Interval:
    """An estimate with a standard error: estimate ± z·se (a mean of many replicates, a z)."""
    from scipy.stats import norm

    half = float(norm.ppf(0.5 + level / 2)) * float(se)
    return Interval(float(estimate), float(estimate) - half, float(estimate) + half, level, int(n), "normal")


def rank_divergence(statistic: float, bins: int, n: int, level: float = 0.95) -> Interval:
    """Cohen's w of a histogram of n values over `bins` bins from its Pearson χ² `statistic`, and its
    interval from the non-central χ² (df = bins − 1, non-centrality n·w²), inverted in the
    non-centrality; the estimate is the moment one, √(max(X − df, 0)/n)."""
    from scipy.optimize import brentq
    from scipy.special import chdtr, chndtr  # scipy.stats.chi2 / ncx2's CDFs, without their per-call overhead

    df, x, tail = bins - 1, float(statistic), (1 - level) / 2

    def cdf(nc: float) -> float:
        return float(chdtr(df, x) if nc <= 0 else chndtr(x, df, nc))

    def solve(target: Callable[[float], float]) -> float:  # the non-centrality where target crosses 0
        hi = max(x, 1.0)
        while target(hi) > 0:
            hi *= 2
        return float(brentq(target, 0.0, hi, xtol=1e-6))  # w to about 1e-4 at n = 100

    upper = solve(lambda nc: cdf(nc) - tail) if cdf(0.0) > tail else 0.0
    lower = solve(lambda nc: tail - (1 - cdf(nc))) if 1 - cdf(0.0) < tail else 0.0
    w = math.sqrt(max(x - df, 0.0) / n)
    return Interval(w, math.sqrt(lower / n), max(math.sqrt(upper / n), w), level, int(n), "non-central χ² (Cohen's w)")


def largest(each: Callable[[float], Sequence[Interval]], level: float, what: str = "") -> Interval:
    """The largest of several estimates with its interval at `level`: `each(level)` gives their
    intervals; the lower end is the largest at 1 − (1 − level)/k (Bonferroni over the k estimates),
    the upper end the largest at `level` itself."""
    own = list(each(level))
    k = len(own)
    lower = max(i.lower for i in each(1 - (1 - level) / k)) if k > 1 else own[0].lower
    top = max(own, key=lambda i: i.estimate)
    return Interval(top.estimate, min(lower, top.estimate), max(i.upper for i in own), level, top.n,
                    f"{top.method}, largest of {k}{' ' + what if what else ''} (lower end Bonferroni)")


def bootstrap(
    data: np.ndarray | Sequence[np.ndarray],
    statistic: Callable[..., float],
    level: float = 0.95,
    seed: int = 0,
    n_resamples: int = 2000,
    vectorized: bool = False,
) -> Interval:
    """A statistic of replicates (axis 0 of each array; several arrays are resampled together,
    row by row) and its percentile bootstrap interval, with a fixed seed. A `vectorized`
    statistic takes `axis=` (the replicates' axis) as scipy.stats.bootstrap passes it: much faster.

    A statistic with no spread over resamples (every replicate alike) has a zero-width interval.
    """
    from scipy.stats import bootstrap as scipy_bootstrap

    arrays = [np.asarray(data)] if isinstance(data, np.ndarray) else [np.asarray(a) for a in data]
    estimate = float(statistic(*arrays, axis=0) if vectorized else statistic(*arrays))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate bootstrap distribution: handled below
        res = scipy_bootstrap(
            arrays, statistic, paired=True, vectorized=vectorized, confidence_level=level, n_resamples=n_resamples,
            method="percentile", rng=np.random.default_rng(seed),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = estimate
    return Interval(estimate, min(low, estimate), max(high, estimate), level, len(arrays[0]), "bootstrap")


@dataclass(frozen=True)
class Decision:
    """A verdict on `interval` against `comparison bound`, and how solid it is.

    `margin` is in interval half-widths from the bound, positive inside (the half facing the
    bound): above 1 the interval clears it (`pass`), below −1 it is beyond it (`fail`).
    `needed` projects the replicates that would decide an `undecided` one (None otherwise, or
    when the estimate sits exactly on the bound). `looks` lists (n, verdict) of every look taken.
    """

    interval: Interval
    comparison: Comparison
    bound: float
    verdict: Verdict
    margin: float
    needed: int | None = None
    looks: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    cap: int | None = None

    def record(self, figure: str, unit: str = "") -> dict[str, Any]:
        """A gate record (`harness.checks.gate_record`'s fields) with the interval and verdict:
        `passed` is true only for `pass`."""
        iv = self.interval
        inside = self.bound - iv.estimate if self.comparison == "≤" else iv.estimate - self.bound
        return {
            "figure": figure,
            "comparison": self.comparison,
            "bound": float(self.bound),
            "value": iv.estimate,
            "margin": inside,
            "margin_hw": self.margin,
            "unit": unit,
            "passed": self.verdict == "pass",
            "verdict": self.verdict,
            "interval": [iv.lower, iv.upper],
            "level": iv.level,
            "method": iv.method,
            "n": iv.n,
            "cap": self.cap,
            "needed": self.needed,
            "looks": [list(look) for look in self.looks],
            "threshold": f"{self.comparison} {self.bound:g}" + (f" {unit}" if unit else ""),
        }


def decide(interval: Interval, comparison: Comparison, bound: float) -> Decision:
    """One look: `pass` if the interval clears the bound, `fail` if it is beyond it, else `undecided`."""
    est, lo, hi = interval.estimate, interval.lower, interval.upper
    good, bad = (hi, lo) if comparison == "≤" else (lo, hi)  # the interval's edge on each side
    inside = bound - est if comparison == "≤" else est - bound
    if comparison == "≤":
        passed, failed = hi < bound, lo > bound
    else:
        passed, failed = lo > bound, hi < bound
    half = abs(good - est) if inside >= 0 else abs(est - bad)
    margin = inside / half if half > 0 else math.copysign(math.inf, inside) if inside else 0.0
    verdict: Verdict = "pass" if passed else "fail" if failed else "undecided"
    needed = None
    if verdict == "undecided" and inside != 0 and interval.n > 0:
        needed = math.ceil(interval.n * (half / abs(inside)) ** 2)
    return Decision(interval, comparison, float(bound), verdict, float(margin), needed, ((interval.n, verdict),))


@dataclass(frozen=True)
class Plan:
    """Looks at n = first, first + batch, …, cap replicates; `alpha` spent per side over all looks."""

    first: int
    batch: int
    cap: int
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not (0 < self.first <= self.cap and self.batch > 0 and 0 < self.alpha < 0.5):
            raise ValueError(f"bad sequential plan {self}: need 0 < first ≤ cap, batch > 0, 0 < alpha < 0.5")

    def sizes(self) -> list[int]:
        """The replicate count of every look, the last one the cap."""
        sizes = list(range(self.first, self.cap, self.batch))
        return sizes + [self.cap]

    def spent(self, n: int) -> float:
        """α spent per side by a look at n replicates (Pocock-type Lan–DeMets spending)."""
        t = min(n / self.cap, 1.0)
        return self.alpha * math.log1p((math.e - 1) * t)

    def level(self, n: int, previous: int = 0) -> float:
        """The two-sided level of the interval at a look at n, the previous look at `previous`."""
        return 1 - 2 * (self.spent(n) - self.spent(previous))


def sequential(
    plan: Plan,
    measure: Callable[[int, float], Interval],
    comparison: Comparison,
    bound: float,
    progress: Callable[[str], None] | None = None,
) -> Decision:
    """Look at `plan.sizes()` in turn until a look decides; `measure(n, level)` returns the interval
    from replicates 0..n−1 (reusing the ones already computed) at that look's level."""
    return sequential_gates(plan, [(measure, comparison, bound)], progress)[0]


Gate = tuple[Callable[[int, float], Interval], Comparison, float]


def sequential_gates(
    plan: Plan, gates: Sequence[Gate], progress: Callable[[str], None] | None = None
) -> list[Decision]:
    """Several gates on the same replicates, each `(measure, comparison, bound)` its own sequential
    test under `plan`: a gate keeps the decision of the look that settled it; the looks go on while
    one is undecided and none has failed (a check with a failed gate fails whatever the others
    say, so it adds no replicates for them; stopping early never raises a gate's error rate)."""
    looks: list[list[tuple[int, str]]] = [[] for _ in gates]
    decided: list[Decision | None] = [None] * len(gates)
    previous = 0
    for n in plan.sizes():
        level = plan.level(n, previous)
        for i, (measure, comparison, bound) in enumerate(gates):
            if decided[i] is not None and decided[i].verdict != "undecided":  # type: ignore[union-attr]
                continue
            decision = decide(measure(n, level), comparison, bound)
            decided[i] = decision
            looks[i].append((n, decision.verdict))
            if progress is not None:
                iv = decision.interval
                progress(f"look at {n}: {decision.verdict} ({iv.estimate:.4g} [{iv.lower:.4g}, {iv.upper:.4g}] "
                         f"vs {comparison} {bound:g})")  # fmt: skip
        previous = n
        verdicts = [d.verdict for d in decided if d is not None]
        if "fail" in verdicts or "undecided" not in verdicts:
            break
    out = []
    for d, seen in zip(decided, looks, strict=True):
        assert d is not None  # plan.sizes() is never empty
        out.append(Decision(d.interval, d.comparison, d.bound, d.verdict, d.margin, d.needed, tuple(seen), plan.cap))
    return out


def worst(verdicts: Sequence[str]) -> Verdict:
    """A check's verdict from its gates': any `fail` fails, else any `undecided`, else `pass`."""
    return "fail" if "fail" in verdicts else "undecided" if "undecided" in verdicts else "pass"
