"""Rank statistics: SBC's and the likelihood evidence's thinning, normalised ranks and uniformity tests.

One binning of normalised ranks (`rank_counts`, which the plots read too); thinning to about one
draw per effective sample (ArviZ's `thin`); the jittered PIT that puts ranks among different
numbers of draws on one scale; and the two uniformity tests per quantity — Pearson's χ² on binned
ranks and ArviZ's simultaneous ECDF band (Säilynoja et al. 2022) — at a Bonferroni share of α.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

__all__ = ["RankTest", "ecdf_band", "jittered_pit", "rank_counts", "shape_of", "thin_indices", "uniformity"]


class RankTest(Protocol):
    """What the uniformity tests read of a gate (`harness.checks.sbc.SBCGate` is one)."""

    bins: int
    n_simulations: int

    def per_test(self, n_quantities: int) -> float: ...


def rank_counts(pit: np.ndarray, bins: int) -> np.ndarray:
    """Counts of normalised ranks (in [0, 1]) in `bins` equal bins; a rank of exactly 1 goes in the last."""
    return np.bincount(np.minimum((np.asarray(pit) * bins).astype(int), bins - 1), minlength=bins)


def thin_indices(n_chains: int, n_draws: int, ess: float) -> np.ndarray:
    """Flat indices of the draws left after thinning each chain by ⌈draws/ESS⌉.

    Autocorrelated draws make ranks over-dispersed even for a correct model; keeping about one
    draw per effective sample removes that. Ranks are then uniform on 0..L_i with L_i the
    count kept, which varies per fit; `jittered_pit` puts them on one scale.
    """
    from arviz_stats import thin

    step = max(1, math.ceil(n_chains * n_draws / ess)) if math.isfinite(ess) and ess > 0 else n_draws
    # ArviZ's thinning of the (chain, draw) index array at our factor (its "auto" factor would
    # use bulk and tail ESS and change which draws SBC keeps)
    return np.asarray(thin(np.arange(n_chains * n_draws).reshape(n_chains, n_draws), factor=step)).ravel()


def jittered_pit(ranks: np.ndarray, n_thinned: np.ndarray, seed: int = 0) -> np.ndarray:
    """(rank + U) / (L + 1): exactly Uniform(0, 1) under calibration whatever each fit's L."""
    ranks = np.asarray(ranks, dtype=float)
    u = np.random.default_rng(seed).uniform(size=ranks.shape)
    return (ranks + u) / (np.asarray(n_thinned, dtype=float).reshape(-1, *([1] * (ranks.ndim - 1))) + 1)


@lru_cache(maxsize=8)
def ecdf_band(
    n: int, prob: float, n_simulations: int, seed: int = 214
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ArviZ's simultaneous `prob` band for the ECDF of n uniform values: (x, lower, upper)."""
    from arviz_stats.ecdf_utils import ecdf_pit

    x, _, lower, upper = ecdf_pit(np.linspace(0, 1, n), prob, n_simulations, rng=np.random.default_rng(seed))
    return x, lower, upper


def uniformity(pit: np.ndarray, names: Sequence[str], gate: RankTest) -> dict[str, dict[str, Any]]:
    """χ² (binned) and ECDF simultaneous-band tests of each column of `pit` (n, Q)."""
    from arviz_stats.ecdf_utils import compute_ecdf
    from scipy import stats

    pit = np.asarray(pit, dtype=float).reshape(-1, len(names))
    n = pit.shape[0]
    alpha_test = gate.per_test(len(names))
    if n < 2 * gate.bins:
        return {q: {"n": n, "reject": True, "why": f"only {n} usable fits"} for q in names}
    x, lower, upper = ecdf_band(n, 1.0 - alpha_test, gate.n_simulations)
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        counts = rank_counts(pit[:, j], gate.bins)
        chi2 = stats.chisquare(counts)
        ecdf = compute_ecdf(pit[:, j], x)
        below, above = lower - ecdf, ecdf - upper
        outside = bool(np.any(below > 1e-12) or np.any(above > 1e-12))
        chi2_reject = bool(chi2.pvalue < alpha_test)
        out[name] = {
            "n": n,
            "chi2": float(chi2.statistic),
            "chi2_p": float(chi2.pvalue),
            "chi2_reject": chi2_reject,
            "ecdf_outside_band": outside,
            "ecdf_max_excursion": float(max(below.max(), above.max(), 0.0)),
            "ecdf_max_abs_diff": float(np.max(np.abs(ecdf - x))),
            "reject": chi2_reject or outside,
            "alpha_per_test": alpha_test,
            "mean_pit": float(pit[:, j].mean()),
            "central_half": float(np.mean((pit[:, j] >= 0.25) & (pit[:, j] <= 0.75))),
            "outer_tenth": float(np.mean((pit[:, j] < 0.05) | (pit[:, j] > 0.95))),
            "low_twentieth": float(np.mean(pit[:, j] < 0.05)),
            "high_twentieth": float(np.mean(pit[:, j] > 0.95)),
        }
    return out


def shape_of(test: dict[str, Any]) -> str:
    """A rejected rank distribution's departure in words: ∪ (posterior too narrow), ∩ (too wide),
    or piled at one end (biased); a tail counts as heavy beyond 2 standard errors of its 5%."""
    if not test.get("reject"):
        return "uniform"
    if "central_half" not in test:
        return test.get("why", "untested")
    n = test["n"]
    low, high, central = test["low_twentieth"], test["high_twentieth"], test["central_half"]
    heavy = 0.05 + 2 * math.sqrt(0.05 * 0.95 / n)
    if low > heavy and high > heavy:
        return (
            f"∪-shaped: truth in the posterior's tails (posterior too narrow); {low:.0%} low, {high:.0%} high"
        )
    if central > 0.5 + 2 * math.sqrt(0.25 / n) and low + high < 0.1:
        return (
            "∩-shaped: truth mid-posterior (posterior too wide); "
            f"{central:.0%} in the central half (50% expected)"
        )
    if high > heavy and test["mean_pit"] > 0.5:
        return f"piled high: the truth exceeds most posterior draws in {high:.0%} of fits (5% expected)"
    if low > heavy and test["mean_pit"] < 0.5:
        return f"piled low: the truth is below most posterior draws in {low:.0%} of fits (5% expected)"
    return f"non-uniform (mean normalised rank {test['mean_pit']:.2f})"
