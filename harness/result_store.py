"""The result store: one way to say "this folder's result is complete and was made from this spec and this code".

A result folder holds `result.json` and, once complete, `_SUCCESS` (stamped last, through
`fusion.io`). The record carries `key`, a hash of the spec that produced it (a dataclass or
a dict: settings, suite, case digests) and of the sources its numbers come from. A rerun
reuses a folder only when it is stamped and its key is the one the rerun would write; any
other folder is redone. The runner's check folders and the replicate folders of SBC,
coverage and stability (`harness.sim.store`) are all written and read here.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from fusion.io import (
    clear_success,
    is_complete,
    json_text,
    mark_success,
    read_json,
    sha256_file,
    sha256_manifest,
    sha256_tree,
    write_json,
)
from harness.paths import repo_root

__all__ = ["KEY", "RESULT_FILE", "load_result", "result_key", "save_result", "source_digest"]

RESULT_FILE = "result.json"
KEY = "key"  # the field of `result.json` a rerun compares


@lru_cache(maxsize=8)
def source_digest(paths: tuple[str, ...]) -> str:
    """SHA-256 over the `.py` files at `paths` (files or folders, relative to the repository root).

    Computed once per process: the sources do not change while a run is going.
    """
    root = repo_root()  # the folder holding both packages, in a checkout and when installed
    files: list[tuple[str, str]] = []
    for rel in paths:
        path = root / rel
        if path.is_dir():
            files += [(f"{rel}/{name}", digest) for name, digest in sha256_tree(path, "*.py").items()]
        elif path.is_file():
            files.append((rel, sha256_file(path)))
        else:  # a moved module must not silently drop out of what a stored result depends on
            raise FileNotFoundError(f"{path}: a source the result store hashes is missing")
    return sha256_manifest(files)


def result_key(spec: Any, code: str) -> str:
    """Hash of a spec (a dataclass or a JSON-able dict) and a source digest: what a stored result depends on."""
    blob = json_text(spec, indent=None) + code  # a dataclass is written as its fields
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_result(folder: str | Path, key: str, *, null_as_nan: bool = False) -> dict[str, Any] | None:
    """The record in `folder` if it is complete and was made under `key`; None means: redo it.

    `null_as_nan` reads back as NaN the non-finite numbers `fusion.io` wrote as null (records of figures).
    """
    folder = Path(folder)
    if not is_complete(folder):
        return None
    try:
        record = read_json(folder / RESULT_FILE, null_as_nan=null_as_nan)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get(KEY) == key else None


def save_result(folder: str | Path, record: dict[str, Any], key: str, *, complete: bool = True) -> Path:
    """Withdraw the stamp, write `result.json` with `key`, then stamp the folder if the result is `complete`.

    A result that must be retried (an error, an interruption) is written unstamped, so it is
    there to read but never reused.
    """
    folder = Path(folder)
    clear_success(folder)
    path = write_json(folder / RESULT_FILE, {**record, KEY: key})
    if complete:
        mark_success(folder)
    return path
