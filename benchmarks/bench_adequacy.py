"""Peak memory and time of `harness run --case CASE --check adequacy` on a full-size case (issue 20).

Generates a synthetic 761 × 761 grid, 7 yearly steps, 27 members (`fusion.data.synthetic`, not
committed; reused with `--keep DIR`), writes a `case.yaml` asking for `adequacy` only (the check
needs no prototype reference), then runs the harness on it in a fresh process and prints that
process's peak RSS (`getrusage(RUSAGE_CHILDREN)`), its wall time, the verdict and the check's
own figures (block widths, false alarms). A benchmark that prints figures, not a timed assert.

usage: python benchmarks/bench_adequacy.py [--ny 761 --nx 761 --members 27] [--keep DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench_case import full_size_inputs, measured_full_size_check, memory_line


def build_case(root: Path, ny: int, nx: int, members: int, years: tuple[int, int]) -> Path:
    """Inputs, config and case.yaml under `root` (reused when already there)."""
    config = full_size_inputs(root / "data", ny, nx, members, years, "compat: fixed\nlikelihood: {form: effective}\n")
    case = root / "case"
    case.mkdir(parents=True, exist_ok=True)
    (case / "case.yaml").write_text(f"name: full-size\nconfig: {config}\nchecks: [adequacy]\n")
    return case


def main() -> None:
    _, rss, record = measured_full_size_check(__doc__.splitlines()[0], "adequacy", build_case, ok=(0, 1))  # 1: red
    for name, s in record["figures"]["streams"].items():
        print(f"  {name}: {s['n_points']} points, tiles of {s['block_width_cells']} cells (ℓ {s['correlation_length_cells']:.1f}), "
              f"{s['n_blocks']} blocks, held-out 1σ/2σ {s['heldout_1sigma']:.3f}/{s['heldout_2sigma']:.3f}")  # fmt: skip
    print(f"  false alarms: {record['figures']['false_alarm']}")
    print(memory_line(rss))


if __name__ == "__main__":
    sys.exit(main())
