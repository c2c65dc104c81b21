"""Laplace against NUTS for a whole run, and the cost of `fusion export --format facts`.

1. `run` (`fusion.pipeline.run` from prepared arrays: sampling or the Laplace fit and its draws,
   `w`/`logL_*` per member, diagnostics, weights table, trace completion) with
   `method: laplace` and `method: nuts` (`sampler: nutpie`) on the synthetic 20,000-point,
   27-member case of `bench_sampling.py`, draws 500 × 4 chains, tune 1000, seed 42.
2. `fusion export --format facts --samples 20000` (9 years, 2020:2100:10) of a finished run of
   the bundled example, through the CLI entry point, against the `fusion run` that made it.

Every variant runs in its own child process (imports done before the clock starts), which
reports its wall time and its peak resident memory (`ru_maxrss`), so peaks do not mix.

    python benchmarks/bench_exports.py --standalone [--json out.json]

`python benchmarks/bench_exports.py` prints the suite's figure for this (`test_export_facts` in
benchmarks/test_bench_suite.py, as benchmarks/tables.py renders it); `--standalone` runs the
script's own comparison described here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child_run(method: str, n: int, m: int) -> dict[str, Any]:
    import warnings

    sys.path.insert(0, str(HERE))
    from bench_sampling import _config, synthetic_prepared

    from fusion.pipeline import run

    prepared = synthetic_prepared(n, m)
    cfg = _config("nutpie", 500, 1000, 4, None, 42).with_updates(inference={"method": method})
    base = _peak_mb()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(cfg, prepared=prepared, with_projection=False, progressbar=False)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "peak_rss_mb": _peak_mb(), "rss_before_mb": base, "method": method,
            "w_mean": result.weights["posterior_mean"].tolist()}


def _child_cli(argv: list[str]) -> dict[str, Any]:
    import warnings

    import fusion.export  # noqa: F401 - imports before the clock
    import fusion.pipeline  # noqa: F401
    from fusion.cli import main

    base = _peak_mb()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(argv)
    return {"wall_s": time.perf_counter() - start, "peak_rss_mb": _peak_mb(), "rss_before_mb": base, "exit": code}


def _spawn(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--members", type=int, default=27)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        res = _child_run(rest[0], int(rest[1]), int(rest[2])) if kind == "run" else _child_cli(rest)
        print(json.dumps(res))
        return

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start (shared machine)")
    figures: dict[str, Any] = {}
    for method in ("nuts", "laplace"):
        figures[f"run_{method}"] = _spawn("run", method, str(args.points), str(args.members))
        f = figures[f"run_{method}"]
        print(f"run {method:8s}: {f['wall_s']:7.2f} s, peak RSS {f['peak_rss_mb']:7.1f} MB")
    n, l_ = figures["run_nuts"], figures["run_laplace"]
    print(f"laplace vs nuts: {n['wall_s'] / l_['wall_s']:.1f}x faster, peak RSS ratio {l_['peak_rss_mb'] / n['peak_rss_mb']:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from fusion.data.synthetic import write_example

        config = write_example(root / "example")
        figures["fusion_run_example"] = _spawn("cli", "run", str(config), "--out", str(root / "run"))
        figures["export_facts"] = _spawn(
            "cli", "export", str(root / "run"), "--format", "facts", "--out", str(root / "ais.nc"),
            "--samples", "20000", "--years", "2020:2100:10",
        )
        figures["export_facts"]["file_bytes"] = (root / "ais.nc").stat().st_size
        figures["export_posterior"] = _spawn(
            "cli", "export", str(root / "run"), "--format", "posterior", "--out", str(root / "p.json"), "--samples"
        )
    r, e, p = figures["fusion_run_example"], figures["export_facts"], figures["export_posterior"]
    print(f"fusion run (example, 4 x 1000 nutpie): {r['wall_s']:6.2f} s, peak RSS {r['peak_rss_mb']:.1f} MB")
    print(f"export facts 20000 x 9:               {e['wall_s']:6.2f} s, peak RSS {e['peak_rss_mb']:.1f} MB "
          f"(+{e['peak_rss_mb'] - e['rss_before_mb']:.1f} MB over imports), file {e['file_bytes'] / 1e6:.2f} MB")
    print(f"export posterior --samples:           {p['wall_s']:6.2f} s, peak RSS {p['peak_rss_mb']:.1f} MB")
    print(f"export facts / fusion run: wall {e['wall_s'] / r['wall_s']:.3f}, peak RSS {e['peak_rss_mb'] / r['peak_rss_mb']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    # the suite's figure (benchmarks/test_bench_suite.py::test_export_facts) unless --standalone asks for this
    # script's own, longer comparison
    if "--standalone" not in sys.argv:
        from compare import wrapper_main

        sys.exit(wrapper_main("test_export_facts", __doc__.splitlines()[0]))
    sys.argv.remove("--standalone")
    main()
