"""Artifact folders, `_SUCCESS` stamps, the runs inventory and run markers.

A harness run may be killed at any moment (CI timeout, a laptop lid). Every file is
written to a temporary name and renamed, a folder counts as done only once it carries
`_SUCCESS`, and the stamp is the last thing written, so a killed run leaves at worst an
unstamped folder that the next run redoes. The inventory (`runs.json`) is read, merged
and replaced under a lock, so two runs sharing an output folder cannot lose records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion.io import atomic_path, sha256_file

__all__ = [
    "INVENTORY_FILE",
    "RESULT_FILE",
    "RUN_MARKERS",
    "SUCCESS",
    "clear_run_markers",
    "clear_success",
    "is_complete",
    "locked",
    "read_inventory",
    "run_markers",
    "set_run_marker",
    "stamp_success",
    "to_jsonable",
    "tree_sha256",
    "upsert_inventory",
    "write_bytes",
    "write_json",
    "write_table",
    "write_text",
]

SUCCESS = "_SUCCESS"
RUN_MARKERS: tuple[str, ...] = ("_RUN_SUCCESS", "_RUN_PARTIAL", "_RUN_FAILED")
RESULT_FILE = "result.json"
INVENTORY_FILE = "runs.json"
INVENTORY_KEY: tuple[str, ...] = ("check", "case", "config_hash")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from NumPy scalars/arrays, paths, tuples and sets (NaN becomes null)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | Path, obj: Any) -> Path:
    """Sorted keys and a trailing newline, so reruns give the same bytes and diffs stay small."""
    return write_text(target, json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_table(target: str | Path, table: pd.DataFrame) -> Path:
    """A golden-format CSV (floats as `repr`, read back to the same bits)."""
    from harness.golden import format_table

    return write_text(target, format_table(table))


def stamp_success(folder: str | Path) -> Path:
    """Mark `folder` complete; call only after everything in it is written."""
    return write_text(Path(folder) / SUCCESS, "")


def clear_success(folder: str | Path) -> None:
    """Withdraw the stamp before redoing a folder, so a crash mid-way cannot leave a stale one."""
    with contextlib.suppress(FileNotFoundError):
        (Path(folder) / SUCCESS).unlink()


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / SUCCESS).is_file()


def set_run_marker(out: str | Path, marker: str) -> Path:
    """Leave exactly one of `_RUN_SUCCESS`, `_RUN_PARTIAL`, `_RUN_FAILED` in `out`."""
    if marker not in RUN_MARKERS:
        raise ValueError(f"unknown run marker {marker!r}; valid: {', '.join(RUN_MARKERS)}")
    out = Path(out)
    path = write_text(out / marker, "")
    for other in RUN_MARKERS:
        if other != marker:
            with contextlib.suppress(FileNotFoundError):
                (out / other).unlink()
    return path


def clear_run_markers(out: str | Path) -> None:
    """A run in progress carries no marker: the previous run's verdict no longer describes the folder."""
    for marker in RUN_MARKERS:
        with contextlib.suppress(FileNotFoundError):
            (Path(out) / marker).unlink()


def run_markers(out: str | Path) -> list[str]:
    return [m for m in RUN_MARKERS if (Path(out) / m).is_file()]


@contextlib.contextmanager
def locked(path: str | Path, *, blocking: bool = True) -> Iterator[None]:
    """An advisory `flock` on `path` (created if missing); raises BlockingIOError when busy and not blocking."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_inventory(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / INVENTORY_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data.get("runs", [])) if isinstance(data, dict) else list(data)


def upsert_inventory(out: str | Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Insert or replace the record with the same (check, case, config_hash); keep the list sorted by that key."""
    missing = [k for k in INVENTORY_KEY if not record.get(k)]
    if missing:
        raise ValueError(f"inventory record lacks {missing}")
    out = Path(out)
    with locked(out / f".{INVENTORY_FILE}.lock"):
        key = tuple(str(record[k]) for k in INVENTORY_KEY)
        runs = [r for r in read_inventory(out) if tuple(str(r.get(k)) for k in INVENTORY_KEY) != key]
        runs.append(to_jsonable(record))
        runs.sort(key=lambda r: tuple(str(r.get(k)) for k in INVENTORY_KEY))
        write_json(out / INVENTORY_FILE, {"key": list(INVENTORY_KEY), "runs": runs})
    return runs


def tree_sha256(root: str | Path, pattern: str = "*") -> dict[str, str]:
    """SHA-256 of every file under `root` matching `pattern`, by path relative to `root` (provenance)."""
    root = Path(root)
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob(pattern))
        if p.is_file() and not p.name.startswith(".")
    }
