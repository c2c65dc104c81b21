"""Atomic file output: write to a temporary name in the same folder, then rename.

A crash or a bad input never leaves a half-written file under a final name, and a folder is
complete only once it carries `_SUCCESS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "atomic_path",
    "write_text",
    "write_json",
    "write_csv",
    "write_npz",
    "mark_success",
    "is_complete",
    "sha256_file",
    "write_png",
    "SUCCESS",
]

SUCCESS = "_SUCCESS"


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o644)  # mkstemp's 0600 would make shared datasets and reports owner-only
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | Path, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(target: str | Path, table: pd.DataFrame) -> Path:
    """CSV whose floats read back to the same bits (`repr` of each value: shortest round-trip)."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = [repr(float(v)) for v in out[col]]
    with atomic_path(target) as tmp:
        out.to_csv(tmp, index=False)
    return Path(target)


def write_npz(target: str | Path, **arrays: Any) -> Path:
    with atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(target)


def write_png(target: str | Path, fig: Any, dpi: int = 110) -> Path:
    """Save a Matplotlib figure atomically, so a report never links a half-written image."""
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(target)


def sha256_file(path: str | Path) -> str:
    """Provenance of an input or artifact, read in 1 MiB blocks so large NetCDF files stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mark_success(folder: str | Path) -> Path:
    return write_text(Path(folder) / SUCCESS, "")


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / SUCCESS).is_file()
