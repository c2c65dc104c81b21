"""Golden tables' syrupy extension: snapshot a DataFrame as a reviewed golden CSV (pytest only).

The engine (text form, reading, comparison) is `harness.cases.tables`, which `harness run` uses
without loading syrupy or pytest; its names are re-exported here for the tests.
Regenerating is an explicit act (`pytest --snapshot-update`) that prints every changed
cell, so an update is a reviewed diff and never silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from harness.cases.tables import (
    TABLES_DIR,
    CellDiff,
    TableComparison,
    Tolerance,
    compare_tables,
    format_table,
    golden_root,
    parse_table,
    read_table,
)

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

#: changes written by `--snapshot-update` during this session, printed by harness/release_tests/conftest.py
UPDATES: list[str] = []


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
    """pytest hook (imported by harness/release_tests/conftest.py): after `--snapshot-update`, list every changed golden cell."""
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
