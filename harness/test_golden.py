"""Golden tables of every case: FUSION's outputs against reviewed CSVs in `golden/tables/`.

Regenerate with `pytest harness/test_golden.py --snapshot-update`; the session then lists
every changed cell. The weights tables of the reference cases are, cell for cell, the
prototype's own (`test_weights_tables_are_the_prototypes`), so they are not self-referential.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.conftest import FIXTURES_DIR, GOLDEN_DIR
from harness.golden import GoldenTableExtension, compare_tables, read_table
from harness.parity import (
    TABLES,
    CaseData,
    case_names,
    golden_table_path,
    load_prototype_weights,
    resolve_case,
)

EXTENSIONS = {
    name: GoldenTableExtension.with_tolerances(key=spec.key, **spec.tolerances)
    for name, spec in TABLES.items()
}
CASES = case_names(GOLDEN_DIR, FIXTURES_DIR)
TABLE_CASES = [
    (table, case)
    for case in CASES
    for table, spec in TABLES.items()
    if spec.applies(resolve_case(case, GOLDEN_DIR, FIXTURES_DIR, None))
]


def test_cases_found() -> None:
    """Both shared reference cases are golden cases (a lost folder must not shrink the suite silently)."""
    assert {"small", "subsample"} <= set(CASES), CASES


@pytest.mark.parametrize(("table", "case"), TABLE_CASES)
def test_golden_table(table: str, case: str, snapshot, case_data: Callable[[str], CaseData]) -> None:
    snap = snapshot.use_extension(EXTENSIONS[table])
    where = Path(snap.extension.get_location(test_location=snap.test_location, index=snap.index))
    assert where == golden_table_path(GOLDEN_DIR, table, case), "harness run would read another file"
    assert snap == TABLES[table].build(case_data(case))


PROTOTYPE_TABLES = [
    (table, case, source)
    for case in CASES
    for table, source in (
        ("weights", "weights_unsorted.csv"),
        ("weights_sampled", "sampled/weights_unsorted.csv"),
    )
    if (GOLDEN_DIR / case / source).is_file()
]


@pytest.mark.parametrize(("table", "case", "source"), PROTOTYPE_TABLES)
def test_weights_tables_are_the_prototypes(table: str, case: str, source: str) -> None:
    """A golden weights table is the prototype's own output, bit for bit and in member order."""
    path = golden_table_path(GOLDEN_DIR, table, case)
    diff = compare_tables(
        read_table(path), load_prototype_weights(GOLDEN_DIR / case / source), key="member_id", name=str(path)
    )
    assert diff.equal, "\n".join(diff.messages())
