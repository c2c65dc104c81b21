"""Shared fixtures: tiny hand-made datasets in the prototype's layout (helpers in `tests.helpers`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TinyCase


@pytest.fixture
def tiny(tmp_path: Path) -> Callable[..., TinyCase]:
    def make(**kw: Any) -> TinyCase:
        return TinyCase(tmp_path).standard(**kw)

    return make
