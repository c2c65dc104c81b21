"""Fixtures shared by the harness's own checks, and the report of golden-table updates.

Case data (FUSION's prepared arrays, the reference posteriors, the generated example) is
built once per session: the checks read it many times and building it is the slow part.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.golden import pytest_terminal_summary  # noqa: F401 — prints golden-table updates
from harness.cases import CaseData, bundled_case

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO / "golden"
FIXTURES_DIR = REPO / "fixtures"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def case_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], CaseData]:
    """`case_data(name)`: the session's one `CaseData` for that case (example written to a temp folder)."""
    cache: dict[str, CaseData] = {}
    workdir = tmp_path_factory.mktemp("cases")

    def get(name: str) -> CaseData:
        if name not in cache:
            cache[name] = CaseData(bundled_case(name, GOLDEN_DIR, FIXTURES_DIR, workdir))
        return cache[name]

    return get
