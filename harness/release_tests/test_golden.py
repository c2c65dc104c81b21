"""Golden tables of every bundled case: FUSION's outputs against reviewed CSVs in `golden/<case>/tables/`.

Regenerate with `pytest harness/release_tests/test_golden.py --snapshot-update`; the session then lists
every changed cell. The weights tables of the reference cases are, cell for cell, the
prototype's own (`test_weights_tables_are_the_prototypes`), so they are not self-referential.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cases import bundled_case, bundled_names

from harness.cases.data import CaseData

from harness.cases.reference import SAMPLED, WEIGHTS, read_reference_weights
from harness.testing import FIXTURES_DIR, GOLDEN_DIR
from harness.testing.golden import GoldenTableExtension, compare_tables, read_table
from harness.checks.parity.golden_tables import TABLES, applicable_tables

CASES = bundled_names(GOLDEN_DIR, FIXTURES_DIR)
UNWRITTEN = {name: bundled_case(name, GOLDEN_DIR, FIXTURES_DIR, None) for name in CASES}
TABLE_CASES = [(table, case) for case in CASES for table in applicable_tables(UNWRITTEN[case])]


def test_cases_found() -> None:
    """Both shared reference cases and the example are bundled cases (a lost folder must not shrink the suite)."""
    assert {"small", "subsample", "example"} <= set(CASES), CASES
    assert {t for t, c in TABLE_CASES if c == "small"} == {"prepared", "weights", "weights_sampled", "impact"}
    assert ("sle_impact", "example") in TABLE_CASES


@pytest.mark.parametrize(("table", "case"), TABLE_CASES)
def test_golden_table(table: str, case: str, snapshot, case_data: Callable[[str], CaseData]) -> None:
    spec = TABLES[table]
    where = UNWRITTEN[case].table_path(table)
    extension = GoldenTableExtension.with_tolerances(
        key=spec.key, root=where.parent, table=table, **spec.tolerances
    )
    snap = snapshot.use_extension(extension)
    assert Path(snap.extension.get_location(test_location=snap.test_location, index=snap.index)) == where, (
        "harness run would read another file"
    )
    assert snap == spec.build(case_data(case))


PROTOTYPE_TABLES = [
    (table, case, source)
    for case in CASES
    for table, source in (("weights", WEIGHTS), ("weights_sampled", f"sampled/{WEIGHTS}"))
    if (GOLDEN_DIR / case / source).is_file() and (table != "weights_sampled" or UNWRITTEN[case].file(SAMPLED))
]


@pytest.mark.parametrize(("table", "case", "source"), PROTOTYPE_TABLES)
def test_weights_tables_are_the_prototypes(table: str, case: str, source: str) -> None:
    """A golden weights table is the prototype's own output, bit for bit, in run1..runN order."""
    path = UNWRITTEN[case].table_path(table)
    golden = read_table(path)
    assert list(golden["member_id"]) == [f"run{i + 1}" for i in range(len(golden))]
    prototype = read_reference_weights(GOLDEN_DIR / case / source).set_index("member_id")
    aligned = prototype.loc[list(golden["member_id"])].reset_index()
    diff = compare_tables(golden, aligned, key="member_id", name=str(path))
    assert diff.equal, "\n".join(diff.messages())
