"""The bookkeeping of a harness output folder: its lock, its run marker and its runs inventory.

A harness run may be killed at any moment (CI timeout, a laptop lid). The run marker is the
last thing written, so a folder without one is a run that did not finish. The inventory
(`runs.json`) is read, merged and replaced under a lock, so two runs sharing an output folder
cannot lose records. Files are written through `fusion.io` (atomic, strict JSON).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusion.io import read_json, to_jsonable, write_json, write_text

__all__ = [
    "INVENTORY_FILE",
    "LOCK_FILE",
    "RUN_MARKERS",
    "clear_run_markers",
    "locked",
    "read_inventory",
    "run_markers",
    "set_run_marker",
    "upsert_inventory",
]

RUN_MARKERS: tuple[str, ...] = ("_RUN_SUCCESS", "_RUN_PARTIAL", "_RUN_FAILED")
INVENTORY_FILE = "runs.json"
INVENTORY_KEY: tuple[str, ...] = ("check", "case", "config_hash")
LOCK_FILE = ".harness.lock"  # held by a run and by a sign-off for as long as they write the folder


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
    data = read_json(path)
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
