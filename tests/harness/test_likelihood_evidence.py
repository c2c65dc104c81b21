"""Evidence for `likelihood.form` under correlated errors (harness/sim/correlated.py, check `likelihood`).

The error fields: GSTools' SRF has the stated covariance (and its periodic Fourier generator not).
Quick: on long-range correlated errors the `independent` form's member weights are overconfident
and `effective`'s are not, and doubling n_eff (the planted defect) moves them towards
overconfidence; `blocks` with σ/√n per block (the other planted defect) fails θ SBC at ℓ = 2.
Full (`-m full`): the check's own table and gates.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.sim.correlated import CorrelatedSpec, correlated_design, evidence, evidence_table

pytestmark = pytest.mark.long_module(seconds=107)  # its tests in all under ./dev test (the quick check below)

QUICK = CorrelatedSpec(replicates=30, draws=200, structures=("long",), forms=("independent", "effective"))


@pytest.fixture(scope="module")
def quick_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    """`harness run --suite quick --check likelihood` once (100 replicates of Laplace fits per form
    and error structure, and both planted defects: the slowest test of the default run), with
    its `evidence.json`; the tests of the quick evidence read their figures from it."""
    from harness.checks import CheckContext
    from harness.checks.likelihood import run_check

    out = tmp_path_factory.mktemp("likelihood-quick")
    ctx = CheckContext(suite="quick", artifact_dir=out, golden_dir=out, fixtures_dir=out, progress=lambda _: None)
    result = run_check(ctx)
    return result, json.loads((out / "evidence.json").read_text())


#: lags (cells) where the drawn fields' covariance is tested; from 3 cells on, pairs within ±0.5
LAGS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)


def _distances(pos: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    r, c = pos
    return np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])


def _lag_covariance_p(fields: np.ndarray, pos: tuple[np.ndarray, np.ndarray], model: Any) -> float:
    """Bonferroni p over `LAGS` of t tests (scipy.stats, over the independent fields) that each
    field's mean product over pairs at that lag has the model's mean correlation; lag 0 is the
    marginal variance (= 1)."""
    from scipy import stats

    d = _distances(pos)
    p = []
    for h in LAGS:
        a, b = np.nonzero(np.triu(np.abs(d - h) <= (0.5 if h >= 3 else 1e-9)))
        per_field = np.mean(fields[:, a] * fields[:, b], axis=1)
        p.append(stats.ttest_1samp(per_field, float(np.mean(model.correlation(d[a, b])))).pvalue)
    return min(1.0, len(LAGS) * min(p))


def _fitted_exponential(
    fields: np.ndarray, pos: tuple[np.ndarray, np.ndarray], reach: float
) -> tuple[float, float]:
    """(ℓ, sill) of GSTools' exponential model fitted to the semivariogram pooled over the fields
    at every distinct pair distance up to `reach` (no binning, so no bias from bin centres)."""
    import gstools as gs

    d = _distances(pos)
    a, b = np.triu_indices(d.shape[0], 1)
    near = d[a, b] <= reach
    a, b = a[near], b[near]
    dist, which = np.unique(np.round(d[a, b], 9), return_inverse=True)
    gamma = np.bincount(which, 0.5 * np.mean((fields[:, a] - fields[:, b]) ** 2, axis=0)) / np.bincount(which)
    fit = gs.Exponential(dim=2)
    fit.fit_variogram(dist, gamma, nugget=False)
    return float(fit.len_scale), float(fit.var)


@pytest.mark.parametrize("structure", ["short", "long"])
def test_design_fields_have_the_stated_covariance(structure: str) -> None:
    """GSTools' re-seeded SRF at the design's kept cells: over 200 seeds, the covariance at lags 0 to
    12 cells is the exponential model's (t tests, Bonferroni p > 0.01; measured 1.0 at ℓ = 2 and
    0.96 at ℓ = 6, where fields of a length 25 % too long give 8e-19 and 4e-6), the variance 1
    and the fitted length within 10 % of ℓ (measured 2.03 and 6.07; over four other batches of
    200 seeds 1.97–2.03 and 5.65–6.26, exact Gaussian draws by a Cholesky factor 2.00–2.05 and
    5.78–6.01)."""
    from harness.sim.correlated import STRUCTURES

    length = STRUCTURES[structure]
    errors = correlated_design(QUICK, structure).errors[0]
    fields = np.stack([errors.draw(seed) for seed in range(200)])
    np.testing.assert_array_equal(errors.draw(7), fields[7])  # a seed's field is reproducible
    assert _lag_covariance_p(fields, errors.pos, errors.model) > 0.01
    fitted_length, sill = _fitted_exponential(fields, errors.pos, 3 * length)
    assert abs(fitted_length / length - 1) < 0.10
    assert abs(sill - 1) < 0.10
    assert correlated_design(QUICK, "independent").errors is None
    n_eff = [correlated_design(QUICK, s).n_eff_location[0] for s in ("long", "short", "independent")]
    assert n_eff[0] < QUICK.n_per_stream / 5 and n_eff[0] < n_eff[1] < n_eff[2] == QUICK.n_per_stream


def test_periodic_fourier_generator_fails_the_covariance_check() -> None:
    """The check has power, and it is why the evidence uses the randomization method: GSTools'
    `Fourier` generator with the grid as its period and 32² modes truncates the exponential
    spectrum, so at ℓ = 2 its variance is 0.84 (on 64² modes over grid + 6ℓ still 0.88, at twice
    the randomization method's cost per field)."""
    import gstools as gs

    errors = correlated_design(QUICK, "short").errors[0]
    srf = gs.SRF(errors.model, generator="Fourier", period=QUICK.grid[0], mode_no=32, seed=0)
    fields = np.stack([srf(errors.pos, seed=seed, store=False) for seed in range(100)])
    assert _lag_covariance_p(fields, errors.pos, errors.model) < 1e-6
    assert np.mean(fields**2) < 0.9


def test_quick_evidence_separates_the_forms_and_catches_doubled_neff(quick_check) -> None:
    """On the quick check's long-ℓ errors (100 replicates; n_eff doubled: 400 member replicates)."""
    result, evidence_json = quick_check
    table = result.figures["table"]["long"]
    planted = evidence_json["planted"]["neff_doubled"]["long"]["effective"]
    indep, eff = table["independent"]["members"], table["effective"]["members"]
    assert indep["reliability_z"] < -1.0  # overconfident: weights sharper than the evidence
    assert not eff["reject"]  # (θ SBC needs more replicates than the quick suite spends: -m full)
    assert planted["members"]["reliability_z"] < eff["reliability_z"]
    assert indep["width_90"] < eff["width_90"]  # overconfidence shows as a narrow projection
    assert "| long | effective |" in evidence_table({"long": table})


def test_members_experiment_can_run_more_replicates_than_the_noise_experiment() -> None:
    """`member_replicates` sets the members experiment's count alone (it needs no Laplace fit)."""
    spec = replace(QUICK, replicates=3, member_replicates=7, forms=("independent",))
    figures = evidence(spec)["long"]["independent"]
    assert figures["members"]["n"] == 7
    assert figures["noise"]["n"] + figures["noise"]["failed_fits"] == 3


def test_block_sigma_taken_as_sigma_over_root_n_fails_sbc_under_correlation(quick_check) -> None:
    """The planted defect of `blocks`: each block's σ as σ/√n (correlation inside a square ignored)
    makes θ's posterior far too narrow at ℓ = 2 cells: ranks piled at the ends (χ² p < 1e-6) and 2σ
    coverage below 0.6, where the covariance-based σ covers above 0.8 (at 100 replicates 0.90;
    squares of one ℓ stay somewhat overconfident, docs/user-guide/likelihood.md "Evidence")."""
    spec = CorrelatedSpec(replicates=30, draws=200, structures=("short",), forms=("blocks",))
    proper = evidence(spec)["short"]["blocks"]["noise"]
    # the defect as the quick check plants it (100 replicates, 300 draws)
    planted = quick_check[1]["planted"]["block_sigma_over_root_n"]["short"]["blocks"]["noise"]
    assert planted["reject"] and not planted["ecdf_inside_band"]
    assert planted["coverage_2sigma"] < 0.6 < 0.8 < proper["coverage_2sigma"]
    assert planted["chi2_p_min"] < 1e-6 < proper["chi2_p_min"]


@pytest.mark.full
def test_full_check_reports_the_table_and_gates_the_machinery(tmp_path: Path) -> None:
    from harness.checks import CheckContext
    from harness.checks.likelihood import run_check

    ctx = CheckContext(suite="full", artifact_dir=tmp_path, golden_dir=tmp_path, fixtures_dir=tmp_path, progress=lambda _: None)
    result = run_check(ctx)
    assert result.status == "pass", result.messages
    assert all(result.figures["planted_defects_caught"].values())
    assert "effective" in result.figures["calibrated_everywhere"]
    assert (tmp_path / "evidence.md").read_text().count("| long |") >= 5  # four forms and a planted defect


def test_quick_check_passes_its_machinery_gate(quick_check) -> None:
    """`harness run --suite quick --check likelihood` is green on a correct FUSION: at 40
    replicates its generative-form gate read p 0.008 and the quick suite stayed red unnoticed."""
    result, _ = quick_check
    assert result.status == "pass", result.messages
    (gate,) = [g for g in result.gates if g["figure"].startswith("independent form, independent errors")]
    assert gate["passed"] and gate["value"] >= 0.01
    assert "effective" in result.figures["calibrated_everywhere"]  # of the two structures it runs
