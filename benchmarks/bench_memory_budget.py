"""`fusion prepare` with no flag (blocks of rows from `memory.budget_gb`) against the whole grid in one block.

    python benchmarks/bench_memory_budget.py [--n 3044] [--members 5] [--compat fixed] [--budget 1.5]

Generates the n × n, 2014–2020 synthetic case once into `FUSION_BENCH_CACHE` (the 2 km case,
3,044², is about 4 GB of files), then runs `fusion prepare` in child processes: with the default
budget (or `--budget`), and with a budget large enough for one block (the in-memory path). Prints
each run's peak RSS (the child's `ru_maxrss`) and wall time, the rows per block the budget chose,
their ratios, and whether the arrays are the same bits. A measurement, not a gate: the machine's
load moves the wall times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_prepare import _measure  # noqa: E402
from cases import prepare_case  # noqa: E402

CLI = "import sys; from fusion.cli import main; sys.exit(main(sys.argv[1:]))"


def _with_budget(config: Path, budget: float) -> Path:
    """The case's config with `memory.budget_gb` set, beside it (relative folders keep their meaning)."""
    out = config.parent / f"{config.stem}-budget-{budget:g}.yaml"
    out.write_text(config.read_text() + f"memory: {{budget_gb: {budget}}}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3044)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--compat", choices=["fixed", "prototype"], default="fixed")
    parser.add_argument("--budget", type=float, default=None, help="GB; default: the config's default")
    args = parser.parse_args(argv)
    cache = Path(os.environ.get("FUSION_BENCH_CACHE", "/tmp/fusion-bench-cache"))
    cache.mkdir(parents=True, exist_ok=True)
    config = prepare_case(cache, args.n, args.members, "fixed")  # the same files under either compat
    if args.compat != "fixed":
        variant = config.parent / f"config-{args.compat}.yaml"
        variant.write_text(config.read_text().replace("compat: fixed", f"compat: {args.compat}"))
        config = variant
    from fusion.config import load_config
    from fusion.data.budget import rows_for_budget
    from fusion.data.load import load_data

    runs = {"default": config if args.budget is None else _with_budget(config, args.budget),
            "one block": _with_budget(config, 1000.0)}
    cfg = load_config(runs["default"])
    rows = rows_for_budget(cfg, load_data(cfg, lazy=True))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in runs.items():
            out = Path(tmp) / f"{name.replace(' ', '_')}.npz"
            wall, gb = _measure(CLI, "prepare", str(path), "--out", str(out))
            results[name] = (wall, gb, out)
            print(f"{name:10s} peak RSS {gb:6.2f} GB  wall {wall:7.1f} s", flush=True)
        a, b = np.load(results["default"][2]), np.load(results["one block"][2])
        same = sorted(a.files) == sorted(b.files) and all(a[k].tobytes() == b[k].tobytes() for k in a.files)
    print(f"grid {args.n}² × {args.members} members, compat {args.compat}, budget {cfg.memory.budget_gb} GB: "
          f"{'one block' if rows is None else f'{rows} rows per block'}")
    print(f"ratio peak default / one block: {results['default'][1] / results['one block'][1]:.2f}; "
          f"wall: {results['default'][0] / results['one block'][0]:.2f}; same bits: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
