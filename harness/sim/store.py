"""The replicate store: one folder per replicate, reused on resume only under the same spec and code.

SBC, coverage and stability write their replicates here and resume by `spec_hash`, a hash of
the spec dataclass and of the sources the numbers come from (`code_digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from fusion.io import SUCCESS, is_complete, mark_success, write_json
from harness.progress import ReplicateBar
from harness.sim.parallel import MapStats, pool_running, run_tasks


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the sources a replicate's numbers come from (this harness and the model)."""
    from harness.paths import repo_root

    root = repo_root()  # the folder holding both packages, in a checkout and when installed
    h = hashlib.sha256()
    for rel in _code_files(root):
        path = root / rel
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"missing") + b"\0")
    return h.hexdigest()


def _code_files(root: Path) -> list[str]:
    """Every module of `harness/sim/` (whatever it is split into), then the checks and the model."""
    sim = sorted(p.relative_to(root).as_posix() for p in (root / "harness" / "sim").glob("*.py"))
    return sim + list(_CODE_FILES)


_CODE_FILES = (
    "harness/sbc.py",
    "harness/calibration.py",
    "harness/stability.py",
    "fusion/inference/model.py",
    "fusion/inference/sampling.py",
    "fusion/inference/posterior.py",
    "fusion/data/prepare.py",
    "fusion/data/synthetic.py",
)


def spec_hash(spec: Any) -> str:
    """Hash of a dataclass spec and of the code: a replicate artifact is reused only when both match."""
    blob = json.dumps(asdict(spec), sort_keys=True, default=str, separators=(",", ":")) + code_digest()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def replicate_dir(folder: Path, index: int) -> Path:
    return Path(folder) / "replicates" / f"r{index:05d}"


def load_replicates(folder: Path, n: int, key: str) -> dict[int, dict[str, Any]]:
    """Finished replicates (stamped `_SUCCESS`) computed under the spec hash `key`."""
    done: dict[int, dict[str, Any]] = {}
    for i in range(n):
        d = replicate_dir(folder, i)
        if is_complete(d):
            try:
                rec = json.loads((d / "result.json").read_text())
            except (OSError, ValueError):
                continue
            if rec.get("spec_hash") == key:
                done[i] = rec
    return done


def save_replicate(folder: Path, rec: dict[str, Any]) -> None:
    """Atomic `result.json`, then `_SUCCESS`: a folder is either complete or ignored on resume."""
    d = replicate_dir(folder, rec["index"])
    (d / SUCCESS).unlink(missing_ok=True)
    write_json(d / "result.json", rec)
    mark_success(d)


def run_replicates(
    task: Callable[[Any, list[int], int], dict[str, Any]],
    spec: Any,
    n: int,
    folder: str | Path,
    *,
    label: str,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_size: int = 8,
    progress: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], MapStats, int]:
    """Resume-or-run `n` replicates of `spec` into `folder`; returns (records in order, stats, reused).

    Each record carries `index` and `spec_hash`; a replicate folder written under another spec
    is refitted, never mixed in.
    """
    folder = Path(folder)
    key = spec_hash(spec)
    write_json(folder / "spec.json", {"hash": key, **asdict(spec)})
    done = load_replicates(folder, n, key)
    reused = len(done)
    todo = [i for i in range(n) if i not in done]
    every = max(1, n // 10)
    start = time.perf_counter()
    bar = ReplicateBar(label, n, done=reused)  # a terminal's bar; silent in CI logs
    progress = bar.wrap(progress)
    if reused:
        progress(f"{label}: resuming, {reused}/{n} replicates already done")
    if todo and scheduler is None and workers != 0 and not pool_running(workers or os.cpu_count() or 1):
        progress(
            f"{label}: starting {workers or os.cpu_count()} local worker processes "
            "(each builds FUSION's density callbacks once)"
        )

    def on_chunk(results: list[dict[str, Any]]) -> None:
        before = len(done)
        for rec in results:
            rec["spec_hash"] = key  # stamped here: the driver's spec and code are what a resume compares
            save_replicate(folder, rec)
            done[rec["index"]] = rec
        bar.update(len(done))
        if len(done) // every > before // every or len(done) == n:
            rate = (len(done) - reused) / max(time.perf_counter() - start, 1e-9)
            progress(f"{label}: {len(done)}/{n} replicates ({rate:.1f}/s)")

    try:
        stats = run_tasks(
            task, spec, todo, on_chunk, scheduler=scheduler, workers=workers, chunk_size=chunk_size
        )
    finally:
        bar.close()
    return [done[i] for i in range(n)], stats, reused
