"""Fixtures shared by the harness's own checks, and the report of golden-table updates.

Case data (FUSION's prepared arrays, the reference posteriors, the generated example) is
built once per session: the checks read it many times and building it is the slow part.
Importable helpers live in `harness.testing`; this file holds fixtures and hooks only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cases.data import CaseData
from harness.testing.golden import pytest_terminal_summary  # noqa: F401 — prints golden-table updates
from harness.testing import FIXTURES_DIR, GOLDEN_DIR, case_data_cache


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def case_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], CaseData]:
    """`case_data(name)`: the session's one `CaseData` for that case (example written to a temp folder)."""
    return case_data_cache(tmp_path_factory.mktemp("cases"))
