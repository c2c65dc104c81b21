"""The grid every field must share: one small type that the readers and the regridder both use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.errors import InputError

__all__ = ["Grid"]


@dataclass(frozen=True)
class Grid:
    """Shape and coordinates that every field must share; `source` names the file it came from."""

    shape: tuple[int, int]
    y: np.ndarray | None
    x: np.ndarray | None
    source: Path
    projection: str | None = None  # CF grid_mapping as text (fusion.data.regrid), None when unstated

    def describe(self) -> str:
        return f"{self.shape[0]}x{self.shape[1]} grid of {self.source.name}"

    def check(self, other: "Grid") -> None:
        same = self.shape == other.shape
        for mine, theirs in ((self.y, other.y), (self.x, other.x)):
            if same and mine is not None and theirs is not None:
                same = mine.shape == theirs.shape and np.array_equal(mine, theirs)
        if not same:
            problem = "shape" if self.shape != other.shape else "coordinate values"
            raise InputError(other.source, f"grid mismatch ({problem}): {other.describe()} vs {self.describe()}")
