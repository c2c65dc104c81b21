"""The parallel map: replicates in chunks on spawned local processes, on a dask cluster, or here.

Each local worker builds the density's C callbacks once and keeps them; `run_tasks` hides which
backend runs.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from harness.sim.variants import compile_count


@dataclass
class MapStats:
    """What a parallel map did: replicates fitted, compilations per worker process, wall time."""

    fitted: int = 0
    compilations: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    backend: str = "local"
    first_chunk_s: float = 0.0  # start-up: worker processes, imports, compilation, first chunk
    first_chunk_size: int = 0

    @property
    def steady_per_min(self) -> float:
        """Replicates per minute after the first chunk landed (start-up excluded)."""
        rest = self.seconds - self.first_chunk_s
        return 60.0 * (self.fitted - self.first_chunk_size) / rest if rest > 0 else float("nan")

    @property
    def total_compilations(self) -> int:
        return sum(self.compilations.values())


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


def run_tasks(
    task: Callable[[Any, list[int], int], dict[str, Any]],
    spec: Any,
    indices: Sequence[int],
    on_chunk: Callable[[list[dict[str, Any]]], None],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_size: int = 8,
) -> MapStats:
    """Run `task(spec, chunk, cores)` over `indices` in chunks; `on_chunk(results)` as each lands.

    `task` returns `{"results": [...], **worker_info()}`. Backends: a dask cluster when
    `scheduler` is an address; else `workers` spawned local processes (default: one per core,
    each sampling its chains on one core); `workers=0` runs here, chains on parallel threads.
    Results arrive in completion order; the caller persists them, so a kill loses at most the
    chunks in flight.
    """
    stats = MapStats()
    start = time.perf_counter()
    todo = list(indices)
    if not todo:
        return stats
    chunks = _chunks(todo, chunk_size)

    def take(out: dict[str, Any]) -> None:
        stats.compilations[f"{out['host']}:{out['pid']}"] = int(out["compilations"])
        if not stats.fitted:
            stats.first_chunk_s, stats.first_chunk_size = time.perf_counter() - start, len(out["results"])
        stats.fitted += len(out["results"])
        on_chunk(out["results"])

    if scheduler:
        from distributed import Client
        from distributed import as_completed as dask_completed

        stats.backend = f"dask:{scheduler}"
        with Client(scheduler, set_as_default=False) as client:
            futures = client.map(task, [spec] * len(chunks), chunks, [1] * len(chunks), pure=False)
            for fut in dask_completed(futures, loop=client.loop):
                take(fut.result())
    elif workers == 0:
        stats.backend = "in-process"
        for chunk in chunks:
            take(task(spec, chunk, os.cpu_count() or 1))
    else:
        n = workers or os.cpu_count() or 1
        stats.backend = f"local:{n}"
        pool = local_pool(n)
        futures = [pool.submit(task, spec, chunk, 1) for chunk in chunks]
        try:
            for fut in as_completed(futures):
                take(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    stats.seconds = time.perf_counter() - start
    return stats


_POOLS: dict[int, ProcessPoolExecutor] = {}


def local_pool(workers: int) -> ProcessPoolExecutor:
    """A spawned process pool kept for the life of this process.

    Each worker builds the density's C callbacks on first use and keeps them, so the SBC forms,
    the planted-bug variants and the coverage regimes that follow reuse them.
    """
    pool = _POOLS.get(workers)
    if pool is not None and getattr(pool, "_broken", False):  # a worker died (killed, out of memory)
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
    if pool is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        _POOLS[workers] = pool
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def shutdown_pools() -> None:
    """Stop the local worker processes (tests call it to start from cold)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)

def pool_running(workers: int) -> bool:
    """Whether this process already keeps a local pool of `workers` processes (no start-up to announce)."""
    return workers in _POOLS


def worker_info() -> dict[str, Any]:
    """Who ran a chunk: host, pid and how many times that process has built the C callbacks."""
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid(), "compilations": compile_count()}
