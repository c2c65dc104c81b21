"""`fusion prepare` at 8 km (761², 27 members) and 2 km (3,044², 5 members): in memory, by blocks of rows, on a LocalCluster.

`python benchmarks/bench_prepare_scale.py` runs the suite's `test_prepare_scale` benchmarks
(benchmarks/test_bench_suite.py) and prints their rows as benchmarks/tables.py renders them:
wall time, peak RSS of the `fusion prepare` process and, on the two-worker LocalCluster
(`--scheduler`), of each worker, the ratios to the in-memory run and whether the arrays are its
bits. The 2 km case is about 4 GB of files, generated once into `FUSION_BENCH_CACHE`.
"""

from __future__ import annotations

import sys

from compare import wrapper_main

if __name__ == "__main__":
    sys.exit(wrapper_main("test_prepare_scale", __doc__.splitlines()[0]))
