"""A case's baselines on disk: what FUSION said on the case, one folder per FUSION version and config.

    <case>/baselines/<fusion version>-<config hash>/
        baseline.json       the record `drift` compares with (harness.cases.baseline writes it)
        weights.csv, summary.json, run_metadata.json   the run's own outputs, for people
        _SUCCESS

A folder is written whole or not at all (a temporary sibling, renamed into place, `_SUCCESS`
inside before the rename), so a crash never leaves half a baseline. The history is the
folders themselves, ordered by `created_at`; a re-accepted baseline of the same version and
config replaces its folder and carries the replaced record's acceptance in `replaced`. Reading
validates every folder: a folder without `_SUCCESS`, a `baseline.json` that is not what this
module writes, or one recorded on another case is bad input (`InputError`, one line naming the
file), found when the case is loaded, before any check runs. This module knows folders and
JSON only (no FUSION run, no comparison), so `harness.cases` can read it while loading a case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.errors import InputError
from fusion.io import SUCCESS, json_text, mark_success, write_text

__all__ = [
    "BASELINES",
    "RECORD",
    "SCHEMA",
    "Baseline",
    "baseline_id",
    "baselines_dir",
    "has_baselines",
    "read_baselines",
    "select_baseline",
    "write_baseline",
]

BASELINES = "baselines"
RECORD = "baseline.json"
SCHEMA = 1
#: what every record holds (harness.cases.baseline.outputs_record writes them)
REQUIRED: tuple[str, ...] = (
    "schema", "id", "case", "created_at", "fusion_version", "config_hash", "setup", "deterministic", "sampled",
    "reported", "provenance",
)  # fmt: skip
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass(frozen=True)
class Baseline:
    """One complete baseline folder and its record."""

    id: str
    path: Path
    record: dict[str, Any]

    @property
    def created_at(self) -> str:
        return str(self.record["created_at"])

    @property
    def accepted(self) -> dict[str, Any] | None:
        return self.record.get("accepted")


def baseline_id(fusion_version: str | None, config_hash: str) -> str:
    """`<fusion version>-<config hash>` (first 12 hex digits), safe as a folder name."""
    version = _UNSAFE.sub("_", fusion_version or "unknown")
    return f"{version}-{config_hash[:12]}"


def baselines_dir(case_root: Path) -> Path:
    return Path(case_root) / BASELINES


def _entries(case_root: Path) -> list[Path]:
    """The baseline folders (and stray files) under `baselines/`; names starting with '.' are writes in flight."""
    folder = baselines_dir(case_root)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def has_baselines(case_root: Path) -> bool:
    """Whether the case has anything under `baselines/` (a stray file counts: it is read, and refused)."""
    return bool(_entries(case_root))


def _read(path: Path, case_name: str) -> Baseline:
    if not path.is_dir():
        raise InputError(path, "not a baseline folder (expected <fusion version>-<config hash>/ with baseline.json)")
    record_path = path / RECORD
    if not (path / SUCCESS).is_file():
        raise InputError(path, f"corrupt baseline: no {SUCCESS} (an incomplete write; remove the folder)")
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        raise InputError(record_path, "corrupt baseline: file missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(record_path, f"corrupt baseline: not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(record, dict):
        raise InputError(record_path, "corrupt baseline: expected a JSON object")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise InputError(record_path, f"corrupt baseline: lacks '{missing[0]}'")
    if record["schema"] != SCHEMA:
        raise InputError(record_path, f"corrupt baseline: schema {record['schema']!r}, this harness reads {SCHEMA}")
    for key in ("setup", "deterministic", "sampled", "reported", "provenance"):
        if not isinstance(record[key], dict):
            raise InputError(record_path, f"corrupt baseline: '{key}' is not an object")
    for name, m in record["sampled"].items():
        numbers = isinstance(m, dict) and all(
            m.get(k) is None or (isinstance(m[k], (int, float)) and not isinstance(m[k], bool)) for k in ("mean", "mcse")
        )
        if not numbers or "mean" not in m:
            raise InputError(record_path, f"corrupt baseline: sampled '{name}' is not {{mean, mcse}} numbers")
    bad = [part for part, items in record["deterministic"].items() if not isinstance(items, dict)]
    if bad:
        raise InputError(record_path, f"corrupt baseline: deterministic '{bad[0]}' is not an object")
    if record["case"] != case_name:
        raise InputError(
            record_path, f"baseline of case {record['case']!r}, not of {case_name!r} (copied from another case?)"
        )
    if record["id"] != path.name:
        raise InputError(record_path, f"corrupt baseline: id {record['id']!r} but folder {path.name!r}")
    return Baseline(path.name, path, record)


def read_baselines(case_root: Path, case_name: str) -> list[Baseline]:
    """Every baseline of the case, oldest first; the first bad folder is an `InputError` naming it."""
    found = [_read(p, case_name) for p in _entries(case_root)]
    return sorted(found, key=lambda b: (b.created_at, b.id))


def select_baseline(case_root: Path, case_name: str, named: str | None = None, where: Path | None = None) -> Baseline:
    """The baseline `drift` compares with: `named` (case.yaml `baseline:`, reported against `where`), else the latest."""
    found = read_baselines(case_root, case_name)
    folder = baselines_dir(case_root)
    if named is not None:
        for b in found:
            if b.id == named:
                return b
        ids = ", ".join(b.id for b in found) or "none"
        raise InputError(where or folder, f"key 'baseline': no baseline {named!r} in {folder} (found: {ids})")
    if not found:
        raise InputError(folder, f"no baseline; record one with `harness baseline --case {Path(case_root)}`")
    return found[-1]


def write_baseline(case_root: Path, record: Mapping[str, Any], write_files: Callable[[Path], None]) -> Path:
    """Write `baselines/<record id>/` whole: what `write_files(folder)` writes, `baseline.json`, `_SUCCESS`;
    a folder of the same id is replaced (only once the new one is complete)."""
    folder = baselines_dir(case_root)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / str(record["id"])
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=folder))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the baseline from the rest of the team
        write_files(tmp)
        write_text(tmp / RECORD, json_text(record))
        mark_success(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=folder))
            os.rename(target, old / target.name)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            if old is not None and not target.exists():  # put the replaced one back
                os.rename(old / target.name, target)
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
