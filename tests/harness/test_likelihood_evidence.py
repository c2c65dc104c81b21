"""Evidence for `likelihood.form` under correlated errors (harness/sim/correlated.py, check `likelihood`).

Quick: on long-range correlated errors the `independent` form's member weights are overconfident
and `effective`'s are not, and doubling n_eff (the planted defect) moves them towards
overconfidence; `blocks` with σ/√n per block (the other planted defect) fails θ SBC at ℓ = 2.
Full (`-m full`): the check's own table and gates.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.sim.correlated import CorrelatedSpec, correlated_design, evidence, evidence_table

QUICK = CorrelatedSpec(replicates=30, draws=200, structures=("long",), forms=("independent", "effective"))


def test_design_errors_have_the_stated_correlation() -> None:
    """The Cholesky factor reproduces GSTools' exponential correlation at the design's cells."""
    from fusion.data.correlation import _gstools_model

    cd = correlated_design(QUICK, "long")
    chol = cd.chol[0]
    rho = chol @ chol.T
    r, c = np.divmod(cd.layout.pixel[: QUICK.n_per_stream], QUICK.grid[1])
    d = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])
    np.testing.assert_allclose(rho, _gstools_model("exponential", 6.0, 1.5).correlation(d), atol=1e-8)
    assert correlated_design(QUICK, "independent").chol[0] is None
    assert cd.n_eff_location[0] < QUICK.n_per_stream / 5  # long-range: far fewer effective points


def test_quick_evidence_separates_the_forms_and_catches_doubled_neff() -> None:
    table = evidence(QUICK)["long"]
    planted = evidence(replace(QUICK, forms=("effective",), neff_factor=2.0))["long"]["effective"]
    indep, eff = table["independent"]["members"], table["effective"]["members"]
    assert indep["reliability_z"] < -1.0  # overconfident: weights sharper than the evidence
    assert not eff["reject"]  # (θ SBC needs more replicates than the quick suite spends: -m full)
    assert planted["members"]["reliability_z"] < eff["reliability_z"]
    assert indep["width_90"] < eff["width_90"]  # overconfidence shows as a narrow projection
    assert "| long | effective |" in evidence_table({"long": table})


def test_block_sigma_taken_as_sigma_over_root_n_fails_sbc_under_correlation() -> None:
    """The planted defect of `blocks`: each block's σ as σ/√n (correlation inside a square ignored)
    makes θ's posterior far too narrow at ℓ = 2 cells: ranks piled at the ends (χ² p < 1e-6) and 2σ
    coverage below 0.6, where the covariance-based σ covers above 0.8 (at 100 replicates 0.90;
    squares of one ℓ stay somewhat overconfident, README "Evidence")."""
    spec = CorrelatedSpec(replicates=30, draws=200, structures=("short",), forms=("blocks",))
    proper = evidence(spec)["short"]["blocks"]["noise"]
    planted = evidence(replace(spec, naive_block_sigma=True))["short"]["blocks"]["noise"]
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


def test_quick_check_passes_its_machinery_gate(tmp_path: Path) -> None:
    """`harness run --suite quick --check likelihood` is green on a correct FUSION: at 40
    replicates its generative-form gate read p 0.008 and the quick suite stayed red unnoticed."""
    from harness.checks import CheckContext
    from harness.checks.likelihood import run_check

    ctx = CheckContext(suite="quick", artifact_dir=tmp_path, golden_dir=tmp_path, fixtures_dir=tmp_path, progress=lambda _: None)
    result = run_check(ctx)
    assert result.status == "pass", result.messages
    (gate,) = [g for g in result.gates if g["figure"].startswith("independent form, independent errors")]
    assert gate["passed"] and gate["value"] >= 0.01
    assert "effective" in result.figures["calibrated_everywhere"]  # of the two structures it runs
