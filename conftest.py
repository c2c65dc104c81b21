"""Session-wide test hygiene for `tests/` and `harness/`: a run leaves nothing in the temporary folder.

pytest's own folders go under its base temporary folder, removed after a passing run
(`tmp_path_retention_policy = "failed"` in pyproject.toml); this moves the one thing a
library would otherwise leave behind in there too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest


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
