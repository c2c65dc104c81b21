"""Peak memory of `harness run --case CASE --check parity` on a full-size case.

Builds a case folder in DESIGN.md's format on a synthetic 761 × 761 grid, 7 yearly steps,
27 members (`fusion.data.synthetic.generate`, not committed): a hand-written `case.yaml`,
and as its reference FUSION's own `fusion prepare` and `fusion weights` output (the memory
measured is the harness's, not the prototype's; the prototype's format is kept: its
`model_weights_table.csv` columns, a `posterior.nc` with the four noise scalars). Then it
runs the harness on it in a fresh process and prints that process's peak RSS
(`getrusage(RUSAGE_CHILDREN)` around the subprocess), its wall time and the verdict.

usage: python benchmarks/bench_case.py [--ny 761 --nx 761 --members 27] [--keep DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench_prepare import _measure, full_size_arguments  # same child-process RSS wrapper, same sizes

from harness.paths import repo_root

REPO = repo_root()
CLI = {
    "fusion": "import sys; from fusion.cli import main; sys.exit(main(sys.argv[1:]))",
    "harness": "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))",
}
LIMIT_GB = 1.0


def full_size_inputs(data: Path, ny: int, nx: int, members: int, years: tuple[int, int], head: str) -> Path:
    """A synthetic dataset (no projection inputs) and its config.yaml starting with `head`; reused when there."""
    from fusion.data.synthetic import SyntheticSpec, generate

    config = data / "config.yaml"
    if not config.exists():
        t = time.perf_counter()
        generate(data, SyntheticSpec(ny=ny, nx=nx, members=members, years=years, with_projection=False))
        config.write_text(
            head + "observations: {thickness: {dir: obs/elev}, velocity: {dir: obs/vel}}\nensemble: {dir: ensemble}\n"
        )
        print(f"generated {ny}x{nx}, {members} members in {time.perf_counter() - t:.1f} s: {data}")
    return config


def build_case(root: Path, ny: int, nx: int, members: int, years: tuple[int, int]) -> Path:
    """Inputs, config, case.yaml and reference/ under `root` (reused when already complete)."""
    case = root / "case"
    if (case / "_SUCCESS").is_file():
        return case
    config = full_size_inputs(root / "data", ny, nx, members, years, "compat: prototype\n")
    reference = case / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    posterior = reference / "posterior.nc"
    shutil.copyfile(REPO / "golden" / "small" / "posterior.nc", posterior)
    for args in (
        ["prepare", str(config), "--out", str(reference / "prepared.npz")],
        ["weights", str(config), "--trace", str(posterior), "--out", str(root / "weights.csv")],
    ):
        wall, rss = _measure(CLI["fusion"], *args)
        print(f"fusion {args[0]:8s}: {wall:6.1f} s  peak RSS {rss:5.2f} GB")
    weights = pd.read_csv(root / "weights.csv", dtype={"weight": str, "log_likelihood": str})
    weights = weights.rename(columns={"member_id": "model_id"})[["model_id", "weight", "log_likelihood"]]
    weights.to_csv(reference / "model_weights_table.csv", index=False)
    (case / "case.yaml").write_text(
        f"name: full-size\nconfig: {config}\nreference: reference\nchecks: [parity]\n"
    )
    (case / "_SUCCESS").write_text("")
    return case


def measure_check(case: Path, root: Path, check: str, ok: tuple[int, ...] = (0,)) -> tuple[float, float, dict]:
    """`harness run --case CASE --check CHECK` as a child process: wall seconds, peak RSS (GB) and
    the check's record from report.json; `ok`: the exit statuses that are not a failure."""
    out = root / "harness-out"
    shutil.rmtree(out, ignore_errors=True)
    wall, rss = _measure(CLI["harness"], "run", "--case", str(case), "--check", check, "--out", str(out), ok=ok)
    record = next(r for r in json.loads((out / "report.json").read_text())["checks"] if r["name"] == check)
    return wall, rss, record


def measured_full_size_check(
    description: str, check: str, build: Callable[[Path, int, int, int, tuple[int, int]], Path], ok: tuple[int, ...] = (0,)
) -> tuple[float, float, dict]:
    """The full-size arguments parsed, the case built (under `--keep DIR`, else a scratch folder
    removed afterwards) and `harness run --case --check CHECK` measured: (wall s, peak RSS GB, record).
    Prints the run's line (time, memory, verdict); `memory_line` closes the caller's report."""
    args = full_size_arguments(description)
    root = args.keep or Path(tempfile.mkdtemp(prefix=f"fusion-bench-{check}-"))
    try:
        case = build(root, args.ny, args.nx, args.members, tuple(args.years))
        wall, rss, record = measure_check(case, root, check, ok)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"harness run --case --check {check}: {wall:6.1f} s  peak RSS {rss:5.2f} GB  status {record['status']}")
    return wall, rss, record


def memory_line(rss: float) -> str:
    return f"memory: {rss:.2f} GB of the {LIMIT_GB:.0f} GB budget ({rss / LIMIT_GB:.0%})"


def main() -> None:
    _, rss, record = measured_full_size_check(__doc__.splitlines()[0], "parity", build_case)
    compared = [k for k, v in record["figures"].items() if isinstance(v, dict) and "passed" in v]
    print(f"compared: {', '.join(compared)}; skipped: {', '.join(record['figures'].get('skipped', {}))}")
    print(memory_line(rss))


if __name__ == "__main__":
    sys.exit(main())
