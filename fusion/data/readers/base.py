"""The one thing every observation reader returns, and the small interface each implements.

Modelled on xarray's backends (`xarray/backends/common.py`: one `BackendEntrypoint` per engine):
a reader is a class with a `name`, a `description`, the file-name rule of its product and a
`read` that turns the listed files of one stream into records — per year (or per epoch) the
field(s) and uncertainty, on the files' own grid with its CRS. Regridding, orientation and the
CRS check come after, once, for every product alike (`fusion.data.regrid.align`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fusion.data.fields import ObsField
from fusion.data.grid import Grid
from fusion.errors import DataWarning, InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["ThicknessYear", "VelocityYear", "StreamInput", "Reader", "MISSING_VEL_ERROR", "any_finite"]

MISSING_VEL_ERROR: float = 10.0  # m/yr, the prototype's constant for a missing ERRX/ERRY
_BLOCK_ROWS = 512  # rows read at a time when a reader checks a field it leaves in its file


@dataclass(frozen=True)
class ThicknessYear:
    """One observation time of thickness: a height (or, `rate`, the product's own rate at the
    interval midpoint `year`) and its uncertainty (None: the variable is absent)."""

    year: float  # decimal year; an int for yearly files
    height: ObsField
    uncertainty: ObsField | None
    source: Path
    grid: Grid | None = None
    crs: str | None = None
    rate: bool = False


@dataclass(frozen=True)
class VelocityYear:
    """One observation year of velocity; an error None until aligned means the variable is absent
    (the prototype's constant `MISSING_VEL_ERROR` is set on the grid it is used on)."""

    year: float
    vx: ObsField
    vy: ObsField
    err_x: ObsField | None
    err_y: ObsField | None
    source: Path
    grid: Grid | None = None
    crs: str | None = None


@dataclass
class StreamInput:
    """What a reader made of one stream's files, with the provenance `run_metadata.json` keeps."""

    stream: str  # "thickness" | "velocity"
    product: str
    files: list[Path]
    records: list[Any]
    tokens: dict[Path, dict[str, str]] = field(default_factory=dict)
    crs: str | None = None
    crs_from: str = "file"  # file | config | product default | unstated


def any_finite(values: ObsField) -> bool:
    """Whether a field has a finite value, read a block of rows at a time when left in its file."""
    if isinstance(values, np.ndarray):
        return bool(np.isfinite(values).any())
    ny = values.shape[0]
    return any(np.isfinite(values[slice(r, min(r + _BLOCK_ROWS, ny))]).any() for r in range(0, ny, _BLOCK_ROWS))


class Reader:
    """One product's files → records of one stream. Subclasses set `name`, `description`,
    `file_name` (a regex whose named groups are the release/version tokens) and `defaults`
    (per stream: variable names and rules); explicit config keys beside `product:` win."""

    name: ClassVar[str]
    description: ClassVar[str]
    file_name: ClassVar[re.Pattern[str] | None] = None
    streams: ClassVar[tuple[str, ...]] = ("thickness", "velocity")
    defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    crs: ClassVar[str | None] = None  # the CRS the product's documentation states, when files may omit it

    def setting(self, spec: Any, stream: str, key: str) -> Any:
        """An explicit config key, else this product's default, else the config's default."""
        if key in spec.model_fields_set or key not in self.defaults.get(stream, {}):
            return getattr(spec, key)
        return self.defaults[stream][key]

    def tokens(self, path: Path) -> dict[str, str]:
        """Release/version tokens from the file name (empty when it does not follow the product's rule)."""
        m = self.file_name.search(path.name) if self.file_name is not None else None
        return {k: v for k, v in m.groupdict().items() if v is not None} if m else {}

    def read(self, cfg: "Config", stream: str, spec: Any, files: list[Path]) -> StreamInput:
        raise NotImplementedError

    # --- shared rules ---------------------------------------------------------------------

    @staticmethod
    def unique_years(items: Iterable[tuple[float, Path]]) -> list[tuple[float, Path]]:
        """(year, file) in year order; two files for one year are bad input naming both."""
        seen: dict[float, Path] = {}
        for year, path in items:
            if year in seen:
                raise InputError(path, f"year {year} already given by {seen[year].name}")
            seen[year] = path
        return sorted(seen.items())

    @staticmethod
    def missing_error(path: Path, name: str, compat: str) -> None:
        if compat == "fixed":
            warnings.warn(
                f"{getattr(path, 'url', None) or path}: missing error variable '{name}'; using a constant "
                f"{MISSING_VEL_ERROR} m/yr, which may fail the velocity uncertainty threshold",
                DataWarning,
                stacklevel=3,
            )
