"""Stress test: the same inputs and seed give the same bits, whatever the load, backend or cache.

Not part of the default test run (it takes many minutes). Two modes:

    python benchmarks/stress_determinism.py suites [--out DIR] [--skip-full]
        `harness run --suite quick` twice (once as the machine is, once beside a CPU-bound load
        of one busy process per core) and `--suite full` twice (the second beside the load);
        compares every figure of each report.json (durations, timestamps, host and worker
        details aside) and requires both verdicts to be PASS.

    python benchmarks/stress_determinism.py sbc [--rounds 20] [--replicates 8]
        repeats, each round in a fresh process with empty PyTensor and Numba caches, one SBC
        spec on three backends: in-process, two local processes, a two-process dask cluster;
        every replicate record (timings aside) must be identical across backends and rounds.

Prints a summary ("20/20 bit-identical", or what differed) and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.paths import repo_root

REPO = repo_root()

#: Keys that may differ between identical runs: wall times, clocks, hosts, worker bookkeeping.
VOLATILE = {
    "duration_s", "started_at", "finished_at", "created_at", "timestamp", "host", "hostname", "pid",
    "platform", "python", "versions", "machine", "compilations", "worker_processes", "backend",
    "out", "artifact_dir", "path", "load_average", "reused_replicates", "fitted_replicates",
    "config_hash",  # the generated example's config holds absolute paths under --out
}
VOLATILE_SUFFIXES = ("_s", "_seconds", "seconds", "_per_min", "per_min", "_per_s", "_rate", "_at_utc")


def _volatile(key: str) -> bool:
    return key in VOLATILE or key.endswith(VOLATILE_SUFFIXES) or "wall" in key or "time" in key


def stable(obj: Any, out: str | None = None) -> Any:
    """`obj` without its volatile keys, recursively; the report folder `out` in text (values and
    keys, e.g. input paths in provenance) becomes <out>."""
    if isinstance(obj, dict):
        return {stable(k, out): stable(v, out) for k, v in obj.items() if not _volatile(str(k))}
    if isinstance(obj, list):
        return [stable(v, out) for v in obj]
    if out and isinstance(obj, str):
        return obj.replace(out, "<out>")
    return obj


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON values differ (exact comparison: floats must be bit-equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in one report" for k in sorted(set(a) ^ set(b), key=str)]
        for k in a.keys() & b.keys():
            out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    same = a == b or (a != a and b != b)  # NaN equals NaN here
    return [] if same else [f"{path}: {a!r} vs {b!r}"]


# --------------------------------------------------------------------------------------------
# suites
# --------------------------------------------------------------------------------------------


def _burn(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 1103515245 + 12345) % 2147483648


@contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """`processes` busy loops for the duration of the block."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_burn, args=(stop,), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)


def run_suite(suite: str, out: Path) -> tuple[str, dict[str, Any], float]:
    """`harness run --suite SUITE --out OUT` in a fresh process: (verdict, stable report.json, seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--suite", suite, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - start
    markers = [p.name for p in out.glob("_RUN_*")]
    verdict = markers[0].removeprefix("_RUN_") if markers else f"none (exit {proc.returncode})"
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    report = stable(report, str(out))
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    return verdict, report, seconds


def suites(out: Path, skip_full: bool) -> int:
    cores = os.cpu_count() or 1
    plan = [("quick", False), ("quick", True)] + ([] if skip_full else [("full", False), ("full", True)])
    runs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    failed = False
    for i, (suite, loaded) in enumerate(plan):
        folder = out / f"{i}-{suite}-{'load' if loaded else 'asis'}"
        load1 = os.getloadavg()[0]
        if loaded:
            with cpu_load(cores):
                verdict, report, seconds = run_suite(suite, folder)
        else:
            verdict, report, seconds = run_suite(suite, folder)
        condition = f"beside {cores} busy processes" if loaded else "no added load"
        print(f"{suite:5s} run {len(runs.get(suite, [])) + 1} ({condition}; load average at start {load1:.1f}): "
              f"{verdict} in {seconds:.0f} s", flush=True)
        runs.setdefault(suite, []).append((verdict, report))
        if len(runs[suite]) == 2:  # compare each pair as soon as it is complete
            failed |= not _compare(suite, runs[suite])
    print("SUMMARY:", "identical figures and PASS in every pair" if not failed else "DIFFERENCES (see above)")
    return 1 if failed else 0


def _compare(suite: str, pair: list[tuple[str, dict[str, Any]]]) -> bool:
    """Print how two runs of one suite compare; True when identical and both PASS."""
    (va, ra), (vb, rb) = pair
    diff = differences(ra, rb)
    n = sum(1 for _ in _leaves(ra))
    ok = va == vb == "SUCCESS" and not diff and n > 0
    print(f"{suite}: verdicts {va} / {vb}; {n} figures compared, {len(diff)} differ" + ("" if ok else " -> FAIL"))
    for line in diff[:20]:
        print("   ", line)
    return ok


def _leaves(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


# --------------------------------------------------------------------------------------------
# sbc
# --------------------------------------------------------------------------------------------


def _digest(records: list[dict[str, Any]]) -> str:
    blob = json.dumps(stable(records), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sbc_round(replicates: int) -> dict[str, str]:
    """One round, in this (fresh) process: the record digest per backend."""
    from distributed import LocalCluster

    import harness.sim as sim
    from harness.checks.sbc import SBCSpec, run_sbc

    spec = SBCSpec(n_replicates=replicates, draws=200, tune=200, seed=77)
    quiet = dict(progress=lambda s: None, plots=False)
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out["in-process"] = _digest(run_sbc(spec, root / "a", workers=0, **quiet).records)
        out["local:2"] = _digest(run_sbc(spec, root / "b", workers=2, chunk_size=2, **quiet).records)
        sim.shutdown_pools()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            out["dask:2"] = _digest(run_sbc(spec, root / "c", scheduler=cluster.scheduler_address, **quiet).records)
    return out


def sbc(rounds: int, replicates: int) -> int:
    seen: list[dict[str, str]] = []
    for r in range(1, rounds + 1):
        with tempfile.TemporaryDirectory() as caches:
            env = {
                **os.environ,
                "PYTENSOR_FLAGS": f"base_compiledir={caches}/pytensor",
                "NUMBA_CACHE_DIR": f"{caches}/numba",
                "PYTHONPATH": str(REPO),
            }
            proc = subprocess.run(
                [sys.executable, __file__, "_sbc_round", "--replicates", str(replicates)],
                cwd=REPO, env=env, capture_output=True, text=True,
            )
        if proc.returncode != 0:
            print(f"round {r}: failed\n{proc.stderr[-3000:]}")
            return 1
        digests = json.loads(proc.stdout.strip().splitlines()[-1])
        seen.append(digests)
        print(f"round {r:2d} (cold caches): " + ", ".join(f"{k} {v}" for k, v in digests.items()), flush=True)
    reference = next(iter(seen[0].values()))
    identical = sum(all(v == reference for v in d.values()) for d in seen)
    print(f"SUMMARY: {identical}/{rounds} bit-identical "
          f"({replicates} replicates × 3 backends per round, cold PyTensor and Numba caches each round)")
    if identical != rounds:
        for i, d in enumerate(seen, 1):
            odd = {k: v for k, v in d.items() if v != reference}
            if odd:
                print(f"  round {i}: differs from round 1 in-process on {odd}")
        return 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("suites", help="quick and full harness suites twice each, compare report.json")
    s.add_argument("--out", type=Path, default=None, help="where the reports go (default: a temporary folder)")
    s.add_argument("--skip-full", action="store_true", help="only the quick suite")
    b = sub.add_parser("sbc", help="SBC across backends with cold caches, repeated")
    b.add_argument("--rounds", type=int, default=20)
    b.add_argument("--replicates", type=int, default=8)
    r = sub.add_parser("_sbc_round")
    r.add_argument("--replicates", type=int, default=8)
    args = ap.parse_args()
    if args.mode == "_sbc_round":
        print(json.dumps(sbc_round(args.replicates)))
        return 0
    if args.mode == "sbc":
        return sbc(args.rounds, args.replicates)
    if args.out is None:
        with tempfile.TemporaryDirectory() as tmp:
            return suites(Path(tmp), args.skip_full)
    args.out.mkdir(parents=True, exist_ok=True)
    return suites(args.out, args.skip_full)


if __name__ == "__main__":
    raise SystemExit(main())
