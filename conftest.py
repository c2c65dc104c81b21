"""Session-wide settings of the test processes for `tests/` and `harness/`.

A run leaves nothing in the temporary folder: pytest's own folders go under its base temporary
folder, removed after a passing run (`tmp_path_retention_policy = "failed"` in pyproject.toml);
this moves the one thing a library would otherwise leave behind in there too. Each test
process runs BLAS on one thread (`./dev test` runs one process per core), and under `./dev test`
the modules marked `long_module` are handed out first (`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In `./dev test`'s worker processes (pytest-xdist, `--dist loadscope
    --no-loadscope-reorder`: the workers' collection order is the order modules are handed out):
    the modules marked `long_module(seconds=…)` first, longest first, then the others by their
    number of tests, most first (xdist's own reorder). A long module handed out last decides alone
    when the run ends: xdist's reorder gave the quick `likelihood` evidence (7 tests, a 100 s
    fixture) out late, and the run took 306 s where it takes 289 s with that module first."""
    if not hasattr(config, "workerinput"):  # not an xdist worker (a plain run, or pytest in a subprocess)
        return

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long_module")
        return 0.0 if marker is None else float(marker.kwargs["seconds"])

    count = Counter(module(item) for item in items)
    items.sort(key=lambda item: (-seconds(item), -count[module(item)]))


@pytest.fixture(scope="session", autouse=True)
def _pytensor_generated_source_in_basetemp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """PyTensor writes the source of every graph it compiles with Numba to its own file in the
    system temporary folder and never removes it (its `generated_src_dir` is unset by default):
    about 180 files per test run. Point it into pytest's base folder, here and, through
    `PYTENSOR_FLAGS`, in every worker process or subprocess started from now on."""
    folder = tmp_path_factory.mktemp("pytensor-src")
    previous = os.environ.get("PYTENSOR_FLAGS")
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [previous, f"generated_src_dir={folder}"]))
    if "pytensor" in sys.modules:  # imported while collecting: its config was read already
        sys.modules["pytensor"].config.generated_src_dir = str(folder)
    yield
    if previous is None:
        os.environ.pop("PYTENSOR_FLAGS", None)
    else:
        os.environ["PYTENSOR_FLAGS"] = previous


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread_per_test_process() -> Iterator[None]:
    """BLAS on one thread in this test process (its own libraries only: a process a test starts
    keeps its default, so a test of what a `fusion run` worker sets still sees the default).
    `./dev test` runs one test process per core, and each OpenBLAS thread beyond the first only
    spins on the suite's small products: measured on the 2-core machine, the quick `likelihood`
    check took about twice the CPU with OpenBLAS's default threads. Tests that are about thread
    counts set their own (`threadpool_limits` inside the test wins). NumPy's and SciPy's BLAS are
    loaded first, so the limit covers both."""
    import scipy.linalg  # noqa: F401 - loads SciPy's own OpenBLAS before the limit is set
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
