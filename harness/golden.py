"""Golden tables: one engine that writes, reads and compares numeric tables, and its syrupy extension.

A golden table is reviewed reference output. It is stored as CSV whose floats are written
with `repr` (shortest text that reads back to the same bits), so a diff of the file is a
diff of the numbers, and comparing is bit-exact unless a column is given a tolerance.
Regenerating is an explicit act (`pytest --snapshot-update`) that prints every changed
cell, so an update is a reviewed diff and never silent.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from fusion.io import csv_cell, csv_text
from harness.asserts import order_difference, ulp_distance

if TYPE_CHECKING:
    from syrupy.data import SnapshotCollection, SnapshotCollections
    from syrupy.location import PyTestLocation
    from syrupy.types import PropertyFilter, PropertyMatcher, SerializableData, SerializedData

__all__ = [
    "UPDATES",
    "CellDiff",
    "GoldenTableExtension",
    "TableComparison",
    "Tolerance",
    "compare_tables",
    "format_table",
    "golden_root",
    "parse_table",
    "pytest_terminal_summary",
    "read_table",
]

TABLES_DIR = "tables"
#: changes written by `--snapshot-update` during this session, printed by harness/tests/conftest.py
UPDATES: list[str] = []


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


# --- syrupy extension ---------------------------------------------------------------------


class GoldenTableExtension(SingleFileSnapshotExtension):
    """Snapshot a `pandas.DataFrame` as a golden CSV, by default `<root>/<test file>/<test name>.csv`.

    Compare bit-exactly, or per column with `GoldenTableExtension.with_tolerances(col=Tolerance(...))`;
    `key` names the row-label column, whose order is part of the table. With `table=NAME` the file
    is `<root>/NAME.csv` instead: a case keeps its tables in its own folder (`<reference>/tables/`).
    """

    file_extension = "csv"
    _write_mode = WriteMode.TEXT
    tolerances: ClassVar[Mapping[str, Tolerance]] = {}
    key: ClassVar[str | None] = None
    root: ClassVar[Path | None] = None  # defaults to the repository's golden/
    table: ClassVar[str | None] = None  # set: one flat file `<root>/<table>.csv`

    @classmethod
    def with_tolerances(
        cls,
        *,
        key: str | None = None,
        root: Path | None = None,
        table: str | None = None,
        **tolerances: Tolerance,
    ) -> type[GoldenTableExtension]:
        """A subclass with its own row key and per-column tolerances, and optionally its own `root/table.csv`."""
        return type(
            "GoldenTableExtensionWithTolerance",
            (cls,),
            {
                "tolerances": dict(tolerances),
                "key": key or cls.key,
                "root": root if root is not None else cls.root,
                "table": table if table is not None else cls.table,
            },
        )

    @classmethod
    def _tables(cls) -> Path:
        return cls.root if cls.root is not None else golden_root() / TABLES_DIR

    @classmethod
    def get_file_basename(cls, *, test_location: PyTestLocation, index: Any) -> str:
        if cls.table is not None:
            return cls.table
        return super().get_file_basename(test_location=test_location, index=index)

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        if cls.table is not None:
            return str(cls._tables())
        return str(cls._tables() / test_location.basename)

    @classmethod
    def discovery_dirname(cls, *, test_location: PyTestLocation) -> str:
        return cls.dirname(test_location=test_location) if cls.table is not None else str(cls._tables())

    @classmethod
    def matches_test_location(cls, *, test_location: PyTestLocation, snapshot_location: str) -> bool:
        if cls.table is not None:  # a case's table: the file is named after the table, not the test
            return Path(snapshot_location) == Path(cls.dirname(test_location=test_location)) / (
                f"{cls.table}.{cls.file_extension}"
            )
        return super().matches_test_location(test_location=test_location, snapshot_location=snapshot_location)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        """A case's table: exactly its own file, under the test's snapshot name (other files in the
        case's folder are never claimed, so `--snapshot-update` cannot delete them as unused)."""
        if self.table is None:
            return super().discover_snapshots(test_location=test_location, ignore_extensions=ignore_extensions)
        from syrupy.data import Snapshot, SnapshotCollection, SnapshotCollections

        found = SnapshotCollections()
        path = Path(self.dirname(test_location=test_location)) / f"{self.table}.{self.file_extension}"
        if path.is_file():
            collection = SnapshotCollection(location=str(path))
            collection.add(Snapshot(name=self.get_snapshot_name(test_location=test_location)))
            found.add(collection)
        return found

    def serialize(
        self,
        data: SerializableData,
        *,
        exclude: PropertyFilter | None = None,
        include: PropertyFilter | None = None,
        matcher: PropertyMatcher | None = None,
    ) -> SerializedData:
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"golden tables hold pandas DataFrames, not {type(data).__name__}")
        return format_table(data)

    def _compare(self, serialized: str, snapshot: str) -> TableComparison:
        return compare_tables(
            parse_table(serialized),
            parse_table(snapshot),
            key=self.key,
            tolerances=self.tolerances,
            name="table",
        )

    def matches(self, *, serialized_data: SerializableData, snapshot_data: SerializableData) -> bool:
        try:
            return self._compare(str(serialized_data), str(snapshot_data)).equal
        except ValueError:
            return False

    def diff_lines(self, serialized_data: SerializedData, snapshot_data: SerializedData):  # type: ignore[override]
        """Cell by cell: row label, column, obtained and golden values, ULP distance, tolerance."""
        try:
            lines = self._compare(str(serialized_data), str(snapshot_data)).messages(limit=20)
        except ValueError as exc:
            lines = [f"golden table unreadable: {exc}"]
        yield from lines or ["tables differ only in formatting"]

    @classmethod
    def write_snapshot_collection(
        cls, *, snapshot_collection: SnapshotCollection, name_order: dict[str, int] | None = None
    ) -> None:
        """Write, after recording what changed so the session can print it (`--snapshot-update`)."""
        path = Path(snapshot_collection.location)
        new = next(iter(snapshot_collection)).data
        if path.is_file():
            old = path.read_text()
            try:
                diff = compare_tables(parse_table(str(new)), parse_table(old), key=cls.key, name=_rel(path))
                changes = diff.messages(limit=50) if not diff.equal else [f"{_rel(path)}: reformatted"]
            except ValueError:
                changes = [f"{_rel(path)}: replaced an unreadable golden file"]
        else:
            changes = [f"{_rel(path)}: created ({len(parse_table(str(new)))} rows)"]
        UPDATES.extend(changes)
        super().write_snapshot_collection(snapshot_collection=snapshot_collection, name_order=name_order)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """pytest hook (imported by harness/tests/conftest.py): after `--snapshot-update`, list every changed golden cell."""
    if not UPDATES:
        return
    terminalreporter.section("golden tables updated (review this diff before committing)")
    for line in UPDATES:
        terminalreporter.write_line(line)


def _rel(path: Path) -> str:
    """The path from the repository (or, for a custom root, from the root's parent)."""
    for base in (golden_root().parent, Path.cwd()):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)
