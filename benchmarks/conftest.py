"""The benchmark suite's fixtures (not collected by `./dev test`: run through `benchmarks/compare.py`).

Every benchmark records the machine's load and core count in `extra_info`, and the full-size
`prepare` dataset is generated once into a cache folder outside the repository
(`FUSION_BENCH_CACHE`, default `/tmp/fusion-bench-cache`) and reused by later sessions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cases import prepare_case


@pytest.fixture(autouse=True)
def _machine_load(request: pytest.FixtureRequest) -> None:
    if "benchmark" in request.fixturenames:
        bench = request.getfixturevalue("benchmark")
        bench.extra_info["nproc"] = os.cpu_count()
        bench.extra_info["load_1min_start"] = round(os.getloadavg()[0], 2)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    folder = Path(os.environ.get("FUSION_BENCH_CACHE", "/tmp/fusion-bench-cache"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def full_size_config(cache_dir: Path) -> Path:
    """761 × 761 (the prototype's 8 km grid), 2014–2020, 27 members, as `bench_prepare.py` builds it."""
    return prepare_case(cache_dir, 761, 27, "prototype")


@pytest.fixture(scope="session")
def config_2km(cache_dir: Path) -> Path:
    """3,044 × 3,044 (2 km), 2014–2020, 5 members, `compat: fixed` (about 4 GB of files)."""
    return prepare_case(cache_dir, 3044, 5, "fixed")


@pytest.fixture(scope="session")
def run_case(cache_dir: Path) -> Path:
    """`bench_run.py`'s 20,000-point, 27-member case with its configs; generated once."""
    from bench_run import make_case

    root = cache_dir / "run-case"
    if not (root / "defaults.yaml").is_file():
        make_case(root)
    return root
