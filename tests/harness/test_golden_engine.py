"""The golden-table engine: exact text form, comparisons, and the syrupy workflow end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.testing.golden import GoldenTableExtension, Tolerance, compare_tables, format_table, parse_table
from harness.paths import repo_root

REPO = repo_root()


def test_floats_read_back_to_the_same_bits() -> None:
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, np.inf, -np.inf, 5e-324, 1e308, 0.1, 1 / 3]
    values = np.concatenate([rng.normal(size=200) * 10.0 ** rng.integers(-300, 300, 200), special])
    table = pd.DataFrame(
        {"member_id": [f"run{i}" for i in range(values.size)], "x": values, "n": np.arange(values.size)}
    )
    back = parse_table(format_table(table))
    assert back["x"].to_numpy().tobytes() == values.tobytes()
    assert back["n"].dtype == np.int64 and list(back["member_id"]) == list(table["member_id"])
    nan = parse_table(format_table(pd.DataFrame({"x": [np.nan]})))
    assert np.isnan(nan["x"][0])


def test_compare_bit_exact_and_with_tolerance() -> None:
    golden = pd.DataFrame({"member_id": ["run1", "run2"], "weight": [0.25, 0.75]})
    nudged = golden.copy()
    nudged.loc[1, "weight"] = np.nextafter(0.75, 1.0)
    diff = compare_tables(nudged, golden, key="member_id", name="w.csv")
    assert not diff.equal
    assert diff.messages() == [
        f"w.csv: run2.weight: obtained {float(np.nextafter(0.75, 1.0))!r} vs golden 0.75 (1 ULP), bit-exact"
    ]
    assert compare_tables(nudged, golden, key="member_id", tolerances={"weight": Tolerance(rtol=1e-12)}).equal
    far = golden.copy()
    far.loc[0, "weight"] = 0.26
    diff = compare_tables(far, golden, key="member_id", tolerances={"weight": Tolerance(atol=1e-3)})
    assert [c.row for c in diff.cells] == ["run1"] and diff.cells[0].tolerance == "atol 0.001, rtol 0"


def test_compare_structure() -> None:
    golden = pd.DataFrame({"member_id": ["run1", "run2"], "weight": [0.25, 0.75]})
    swapped = golden.iloc[::-1].reset_index(drop=True)
    diff = compare_tables(swapped, golden, key="member_id")
    assert diff.structure and "row 0 is run2, golden run1" in diff.structure[0]
    assert not diff.cells  # same values by member id: only the order is wrong
    extra = golden.assign(extra=1)
    assert "columns" in compare_tables(extra, golden).structure[0]
    assert "1 rows != golden 2" in compare_tables(golden.iloc[:1], golden).structure


def test_extension_matches_uses_tolerances() -> None:
    a = format_table(pd.DataFrame({"k": ["a"], "v": [1.0]}))
    b = format_table(pd.DataFrame({"k": ["a"], "v": [1.0 + 1e-13]}))
    assert not GoldenTableExtension().matches(serialized_data=a, snapshot_data=b)
    loose = GoldenTableExtension.with_tolerances(key="k", v=Tolerance(rtol=1e-9))
    assert loose().matches(serialized_data=a, snapshot_data=b)
    assert not GoldenTableExtension().matches(serialized_data=a, snapshot_data="not,a\ntable,at,all\n")
    lines = list(GoldenTableExtension().diff_lines(a, b))
    assert lines == [f"table: 0.v: obtained 1.0 vs golden {1.0 + 1e-13!r} (450 ULP), bit-exact"]


INNER_TEST = """
from pathlib import Path
import pandas as pd
from harness.testing.golden import GoldenTableExtension

class Here(GoldenTableExtension):
    root = Path(__file__).parent / "golden"
    key = "member_id"

def test_table(snapshot):
    table = pd.DataFrame({"member_id": ["run1", "run2"], "weight": [0.25, 0.75]})
    assert snapshot.use_extension(Here) == table
"""


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only syrupy: fast
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "syrupy",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(folder),
            "-c",
            str(folder / "pytest.ini"),
            "--snapshot-no-colors",
            str(folder),
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=300,
    )


def test_snapshot_workflow_hand_edit_fails_and_update_prints_the_change(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "conftest.py").write_text(
        "from harness.testing.golden import pytest_terminal_summary  # noqa: F401\n"
    )
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))

    created = _pytest(tmp_path, "--snapshot-update")
    assert created.returncode == 0, created.stdout + created.stderr
    assert "golden/test_inner/test_table.csv: created (2 rows)" in created.stdout
    golden = tmp_path / "golden" / "test_inner" / "test_table.csv"
    assert golden.read_text() == "member_id,weight\nrun1,0.25\nrun2,0.75\n"
    assert _pytest(tmp_path).returncode == 0

    golden.write_text("member_id,weight\nrun1,0.25\nrun2,0.7500000000000001\n")  # a hand edit
    edited = _pytest(tmp_path)
    assert edited.returncode == 1
    assert (
        "table: run2.weight: obtained 0.75 vs golden 0.7500000000000001 (1 ULP), bit-exact" in edited.stdout
    )

    updated = _pytest(tmp_path, "--snapshot-update")
    assert updated.returncode == 0
    assert "golden tables updated (review this diff before committing)" in updated.stdout
    assert "run2.weight: obtained 0.75 vs golden 0.7500000000000001 (1 ULP), bit-exact" in updated.stdout
    assert golden.read_text().endswith("run2,0.75\n")


@pytest.mark.parametrize("bad", [[1, 2], "text"])
def test_extension_refuses_non_tables(bad: object) -> None:
    with pytest.raises(TypeError, match="pandas DataFrames"):
        GoldenTableExtension().serialize(bad)
