"""The table-comparison engine: golden tables' text form, reading and cell-by-cell comparison.

Apart from its syrupy extension (`harness.testing.golden`) so that `harness run` (parity reading a
case's reference tables) loads neither syrupy nor pytest.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.io import csv_cell, csv_text
from harness.asserts import order_difference, ulp_distance

__all__ = [
    "TABLES_DIR",
    "CellDiff",
    "TableComparison",
    "Tolerance",
    "compare_tables",
    "format_table",
    "golden_root",
    "parse_table",
    "read_table",
]

TABLES_DIR = "tables"


@dataclass(frozen=True)
class Tolerance:
    """Per-column closeness as `numpy.isclose`: |a − b| ≤ atol + rtol·|b|. Zero for both means bit-exact."""

    atol: float = 0.0
    rtol: float = 0.0

    @property
    def exact(self) -> bool:
        return self.atol == 0.0 and self.rtol == 0.0

    def describe(self) -> str:
        return "bit-exact" if self.exact else f"atol {self.atol:g}, rtol {self.rtol:g}"


@dataclass(frozen=True)
class CellDiff:
    """One cell that differs: where (row label, column), both values and their ULP distance."""

    row: str
    column: str
    obtained: str
    golden: str
    ulp: int | None = None
    tolerance: str = "bit-exact"

    def __str__(self) -> str:
        ulp = f" ({self.ulp} ULP)" if self.ulp is not None else ""
        return f"{self.row}.{self.column}: obtained {self.obtained} vs golden {self.golden}{ulp}, {self.tolerance}"


@dataclass
class TableComparison:
    """All the ways an obtained table differs from its golden one; empty means equal."""

    name: str
    structure: list[str]
    cells: list[CellDiff]

    @property
    def equal(self) -> bool:
        return not self.structure and not self.cells

    def messages(self, limit: int = 10) -> list[str]:
        lines = [f"{self.name}: {s}" for s in self.structure]
        lines += [f"{self.name}: {c}" for c in self.cells[:limit]]
        if len(self.cells) > limit:
            lines.append(f"{self.name}: … and {len(self.cells) - limit} more cells differ")
        return lines


# --- text form ---------------------------------------------------------------------------


format_table = csv_text  # the golden format is the project's one CSV format (`fusion.io.write_csv`)


def _column(values: list[str]) -> pd.Series | list[str]:
    try:
        return pd.Series([int(v) for v in values], dtype="int64")
    except ValueError:
        pass
    try:
        return pd.Series([float(v) for v in values], dtype="float64")
    except ValueError:
        return pd.Series(values, dtype=object)


def parse_table(text: str) -> pd.DataFrame:
    """Inverse of `format_table`: int, float (via `float()`, exact for repr text) or string columns."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return pd.DataFrame()
    header, body = rows[0], rows[1:]
    widths = {len(r) for r in body}
    if widths - {len(header)}:
        raise ValueError(f"rows of {sorted(widths)} fields under a header of {len(header)}")
    cols = list(zip(*body, strict=True)) if body else [() for _ in header]
    return pd.DataFrame({h: _column(list(c)) for h, c in zip(header, cols, strict=True)})


def read_table(path: str | Path) -> pd.DataFrame:
    return parse_table(Path(path).read_text())


# --- comparison --------------------------------------------------------------------------


def _same_float(a: float, b: float, tol: Tolerance) -> bool:
    if tol.exact:
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return bool(np.isclose(a, b, atol=tol.atol, rtol=tol.rtol))


def compare_tables(
    obtained: pd.DataFrame,
    golden: pd.DataFrame,
    *,
    key: str | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    name: str = "table",
) -> TableComparison:
    """Columns, row order (by `key`) and every cell; floats bit-exact unless `tolerances` names the column."""
    tolerances = dict(tolerances or {})
    structure: list[str] = []
    if list(obtained.columns) != list(golden.columns):
        structure.append(f"columns {list(obtained.columns)} != golden {list(golden.columns)}")
    if len(obtained) != len(golden):
        structure.append(f"{len(obtained)} rows != golden {len(golden)}")
    if key is not None and key in obtained.columns and key in golden.columns:
        got, want = [str(v) for v in obtained[key]], [str(v) for v in golden[key]]
        moved = order_difference(got, want)
        if moved is not None:
            first, a, b = moved
            structure.append(
                f"row order by {key!r} differs: row {first} is {a}, golden {b}"
                f" (obtained {got}, golden {want})"
            )
        obtained_rows = {str(v): i for i, v in enumerate(obtained[key])}
        pairs = [(str(v), obtained_rows.get(str(v)), j) for j, v in enumerate(golden[key])]
    else:
        pairs = [(str(j), j if j < len(obtained) else None, j) for j in range(len(golden))]
    cells: list[CellDiff] = []
    for col in golden.columns:
        if col not in obtained.columns or col == key:
            continue
        tol = tolerances.get(col, Tolerance())
        for label, i, j in pairs:
            if i is None:
                continue
            a, b = obtained[col].iloc[i], golden[col].iloc[j]
            if isinstance(b, (float, np.floating)) or isinstance(a, (float, np.floating)):
                try:
                    fa, fb = float(a), float(b)
                except (TypeError, ValueError):
                    fa = fb = None  # type: ignore[assignment]
                if fa is not None and _same_float(fa, fb, tol):
                    continue
                ulp = ulp_distance(np.float64(fa), np.float64(fb)) if fa is not None else None
                cells.append(CellDiff(label, col, csv_cell(a), csv_cell(b), ulp, tol.describe()))
            elif csv_cell(a) != csv_cell(b):
                cells.append(CellDiff(label, col, csv_cell(a), csv_cell(b)))
    return TableComparison(name, structure, cells)


# --- where golden tables live -------------------------------------------------------------


def golden_root() -> Path:
    """The repository's `golden/` folder (the harness is used from a checkout, installed editable)."""
    from harness.paths import repo_root

    return repo_root() / "golden"


