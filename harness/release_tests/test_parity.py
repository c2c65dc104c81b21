"""Parity with the prototype, case by case: bit-exact arrays and weights, statistical posterior means.

The reference side is the prototype's own output (golden/<case>/, the `reference:` of
fixtures/cases/<case>/case.yaml, copied from the shared reference set, made by
`full_model.py` with PyMC 5.28.5, ArviZ 0.23.4, numpy 2.4.6).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.testing import FIXTURES_DIR, GOLDEN_DIR, REPO
from harness.testing.golden import read_table
from harness.cases import bundled_names
from harness.cases.data import CaseData, sample_case
from harness.cases.reference import WEIGHTS, read_reference_weights
from harness.checks.parity.bits import compare_prepared, compare_weights, plug_in
from harness.checks.parity.statistical import STAT_K, prototype_settings, statistical_parity

PROTOTYPE_CASES = [
    c for c in bundled_names(GOLDEN_DIR, FIXTURES_DIR) if (GOLDEN_DIR / c / "prepared.npz").is_file()
]
SAMPLED_CASES = [c for c in PROTOTYPE_CASES if (GOLDEN_DIR / c / "sampled_posterior.nc").is_file()]
REVIEW_TOOL = REPO.parent / "shared" / "tools" / "compare_parity.py"


def _explain(component) -> str:
    return "\n".join(component.messages)


@pytest.mark.parametrize("case", PROTOTYPE_CASES)
def test_prepared_arrays_bit_exact(case: str, case_data: Callable[[str], CaseData]) -> None:
    data = case_data(case)
    result = compare_prepared(data.prepared, data.reference_prepared)
    assert result.passed, _explain(result)


@pytest.mark.parametrize("case", PROTOTYPE_CASES)
def test_plug_in_weights_bit_exact_from_golden_arrays(
    case: str, case_data: Callable[[str], CaseData]
) -> None:
    """`plug_in_weights` alone: the prototype's arrays in, the prototype's weights out."""
    data = case_data(case)
    golden = data.reference_weights
    result = compare_weights(plug_in(data.reference_prepared, data.posterior), golden, "plugin_weights")
    assert result.passed, _explain(result)


@pytest.mark.parametrize("case", PROTOTYPE_CASES)
def test_pipeline_weights_bit_exact(case: str, case_data: Callable[[str], CaseData]) -> None:
    """End to end: FUSION's own load_data → prepare → plug_in_weights against the prototype's table."""
    data = case_data(case)
    golden = data.reference_weights
    result = compare_weights(plug_in(data.prepared, data.posterior), golden, "pipeline_weights")
    assert result.passed, _explain(result)


@pytest.mark.parametrize("case", SAMPLED_CASES)
def test_plug_in_weights_at_prototype_posterior(case: str, case_data: Callable[[str], CaseData]) -> None:
    data = case_data(case)
    golden = read_reference_weights(GOLDEN_DIR / case / "sampled" / WEIGHTS)
    posterior = data.sampled_posterior["posterior"].to_dataset()
    result = compare_weights(plug_in(data.reference_prepared, posterior), golden, "sampled_weights")
    assert result.passed, _explain(result)


@pytest.mark.parametrize("case", SAMPLED_CASES)
def test_statistical_parity(case: str, case_data: Callable[[str], CaseData]) -> None:
    """FUSION sampled at the prototype's settings (timing.json): means within 4·√(mcse² + mcse²)."""
    data = case_data(case)
    settings = prototype_settings(data.case, data.sampled_posterior)
    cfg = data.config("prototype").with_updates(inference=settings)
    trace = sample_case(cfg, data.prepared)
    summary = read_table(GOLDEN_DIR / case / "posterior_summary.csv")
    result, table = statistical_parity(trace, data.sampled_posterior, summary, data.prepared.member_ids)
    assert len(table) == 4 + data.prepared.n_members  # four noise parameters and every member's w
    assert result.passed, _explain(result)
    assert (table["tolerance"] > 0).all() and STAT_K == 4.0


if REVIEW_TOOL.is_file():  # the outside reviewer's tool sits beside the repo in CI and here

    @pytest.mark.parametrize("case", PROTOTYPE_CASES)
    def test_reviewer_tool_says_identical(
        case: str, case_data: Callable[[str], CaseData], tmp_path: Path
    ) -> None:
        """The artifacts FUSION writes pass the reviewer's own `compare_parity.py`."""
        from fusion.io import write_csv

        data = case_data(case)
        data.prepared.to_npz(tmp_path / "prepared.npz")
        write_csv(tmp_path / "weights.csv", plug_in(data.prepared, data.posterior))
        proc = subprocess.run(
            [
                sys.executable,
                str(REVIEW_TOOL),
                str(GOLDEN_DIR / case),
                str(tmp_path / "prepared.npz"),
                str(tmp_path / "weights.csv"),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "identical", proc.stdout + proc.stderr
