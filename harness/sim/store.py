"""The replicate store: one folder per replicate, reused on resume only under the same spec and code.

SBC and coverage write their replicates here and resume by `spec_hash`, a hash of the spec
dataclass and of the sources the numbers come from (`code_digest`); each replicate folder is a
result folder of `harness.result_store`, the one store the runner and stability use too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from fusion.io import write_json
from harness.progress import ReplicateBar
from harness.sim.parallel import MapStats, pool_running, run_tasks
from harness.result_store import load_result, result_key, save_result, source_digest

#: the sources a replicate's numbers come from: every module of `harness/sim/` (whatever it is
#: split into), the checks built on it and the model
CODE_PATHS: tuple[str, ...] = (
    "harness/sim",
    "harness/checks/sbc.py",
    "harness/checks/coverage.py",
    "harness/checks/stability.py",
    "fusion/inference/noise.py",
    "fusion/inference/fused_kernel.py",
    "fusion/inference/fused_density.py",
    "fusion/inference/sampling.py",
    "fusion/inference/posterior.py",
    "fusion/data/prepare.py",
    "fusion/data/synthetic.py",
)


def code_digest() -> str:
    """SHA-256 of the sources a replicate's numbers come from (this harness and the model)."""
    return source_digest(CODE_PATHS)


def spec_hash(spec: Any) -> str:
    """Hash of a dataclass spec and of the code: a replicate artifact is reused only when both match."""
    return result_key(spec, code_digest())


def replicate_dir(folder: Path, index: int) -> Path:
    return Path(folder) / "replicates" / f"r{index:05d}"


def load_replicates(folder: Path, n: int, key: str) -> dict[int, dict[str, Any]]:
    """Finished replicates (stamped `_SUCCESS`) computed under the spec hash `key`."""
    done = {i: load_result(replicate_dir(folder, i), key, null_as_nan=True) for i in range(n)}
    return {i: rec for i, rec in done.items() if rec is not None}


def save_replicate(folder: Path, rec: dict[str, Any], key: str) -> None:
    """Atomic `result.json`, then `_SUCCESS`: a folder is either complete or ignored on resume."""
    save_result(replicate_dir(folder, rec["index"]), rec, key)


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

    Each record carries `index` and `key` (the spec hash); a replicate folder written under
    another spec is refitted, never mixed in.
    """
    folder = Path(folder)
    # a replicate is the same whatever the count asked for (its data come from its index): a run
    # extended by more replicates (harness.verdict) reuses the ones it has
    key = spec_hash(replace(spec, n_replicates=0) if hasattr(spec, "n_replicates") else spec)
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
            # keyed here: the driver's spec and code are what a resume compares
            save_replicate(folder, rec, key)
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
