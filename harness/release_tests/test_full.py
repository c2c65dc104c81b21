"""Long checks (`pytest -m full`, or `harness run --suite full`): every case, sampled impact."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import runner
from harness.testing import FIXTURES_DIR, GOLDEN_DIR
from harness.cases import bundled_names

pytestmark = pytest.mark.full


def test_full_suite_parity_and_convergence(tmp_path: Path) -> None:
    """Parity of every golden case (with the sampled science impact on the example) and the gate on each."""
    options = runner.RunOptions(
        out=tmp_path / "out",
        suite="full",
        checks=("parity", "convergence"),
        golden_dir=GOLDEN_DIR,
        fixtures_dir=FIXTURES_DIR,
    )
    outcome = runner.run(options, progress=lambda line: None)
    failing = {
        f"{e.result.name}[{e.result.case}]": e.result.messages
        for e in outcome.entries
        if e.result.status != "pass"
    }
    assert not failing, failing
    cases = bundled_names(GOLDEN_DIR, FIXTURES_DIR)
    assert [(e.result.name, e.result.case) for e in outcome.entries] == (
        [("parity", c) for c in cases] + [("convergence", c) for c in cases]
    )
    example = next(e for e in outcome.entries if e.result.name == "parity" and e.result.case == "example")
    assert example.result.figures["impact_convergence"]["passed"]
    assert (example.folder / "table_sle_impact_sampled.csv").is_file()
    assert outcome.marker == "_RUN_SUCCESS"
