"""`product: itslive` — ITS_LIVE annual velocity mosaics (version 2), as NASA JPL writes them.

The schema relied on here was read from the producer's code (nasa-jpl/its_live_production,
`src/itslive_annual_mosaics.py` and `src/itscube_types.py`):
- file name `ITS_LIVE_velocity_<grid>m_<region>_<YYYY>_v<NN>.nc` (Antarctica: `RGI19A`, 120 m);
  the year from the name, else from the global attribute `year` ('DD-Mon-YYYY');
- `vx`, `vy` float32 with `_FillValue` −32767; `vx_error`, `vy_error` uint16 in whole m/yr with
  `missing_value` 32767 (values rounded to the nearest integer by the producer);
- `x` ascending, `y` descending (the producer flips its y coordinates), a scalar `mapping`
  variable named by every field's `grid_mapping`, carrying `spatial_epsg` and `crs_wkt`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion.data.readers.base import Reader, StreamInput
from fusion.data.readers.gridded import read_velocity_stream
from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["ITSLiveReader"]

_YEAR_ATTR = re.compile(r"(\d{4})\s*$")


class ITSLiveReader(Reader):
    name = "itslive"
    description = "ITS_LIVE annual velocity mosaics v2: one file per year, uint16 errors, y descending"
    file_name = re.compile(r"ITS_LIVE_velocity_(?P<grid>\d+m)_(?P<region>[A-Z0-9]+)_(?P<year>\d{4})_(?P<version>v\d+)")
    streams = ("velocity",)
    defaults = {"velocity": {"vx_var": "vx", "vy_var": "vy", "vx_err_var": "vx_error", "vy_err_var": "vy_error"}}

    def year_of(self, path: Path) -> int:
        year = self.tokens(path).get("year")
        if year is None:
            from fusion.data.netcdf import open_dataset

            with open_dataset(path) as ds:
                m = _YEAR_ATTR.search(str(getattr(ds, "year", "")))
            if m is None:
                raise InputError(path, "no year in the file name (ITS_LIVE_velocity_<grid>m_<region>_<YYYY>_v<NN>) "
                                       "nor in its 'year' attribute")
            year = m.group(1)
        return int(year)

    def read(self, cfg: "Config", stream: str, spec: Any, files: list[Path]) -> StreamInput:
        return read_velocity_stream(self, cfg, spec, files, spec.fill_value)
