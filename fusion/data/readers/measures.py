"""`product: measures` — MEaSUREs annual Antarctic ice velocity maps (NSIDC-0720).

The schema relied on here is the NSIDC-0720 user guide's, as DESIGN.md "Inputs as the products
are distributed" records it: file name `Antarctica_ice_velocity_<A>_<B>_1km_v01[.1].nc`, a map of
1 July of year A to 30 June of year B, which stands for year B (so Antarctic Mapping Tools'
`measuresann_interp` labels it too); `VX`, `VY`, `ERRX`, `ERRY` (m/yr) and `CNT`, y descending,
0 meaning no data (`fill_value` overrides it). The files are on EPSG:3031 (polar stereographic,
true scale at 71° S): a file whose fields name no `grid_mapping` is taken to be on it, and the
run records that the CRS was the product's.
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

__all__ = ["MeasuresReader"]


class MeasuresReader(Reader):
    name = "measures"
    description = "MEaSUREs annual Antarctic velocity (NSIDC-0720): July A to June B stands for year B, fill 0"
    file_name = re.compile(
        r"Antarctica_ice_velocity_(?P<start>\d{4})_(?P<end>\d{4})_(?P<resolution>[0-9a-z]+)_(?P<version>v\d+(?:\.\d+)?)"
    )
    streams = ("velocity",)
    defaults = {"velocity": {"vx_var": "VX", "vy_var": "VY", "vx_err_var": "ERRX", "vy_err_var": "ERRY"}}
    crs = "EPSG:3031"
    fill = 0.0

    def year_of(self, path: Path) -> int:
        tokens = self.tokens(path)
        if "end" not in tokens:
            raise InputError(path, "file name is not MEaSUREs' Antarctica_ice_velocity_<A>_<B>_<res>_v<NN>.nc")
        start, end = int(tokens["start"]), int(tokens["end"])
        if end != start + 1:
            raise InputError(path, f"years {start}_{end} in the name are not one July-June year")
        return end

    def read(self, cfg: "Config", stream: str, spec: Any, files: list[Path]) -> StreamInput:
        return read_velocity_stream(self, cfg, spec, files, self.fill if spec.fill_value is None else spec.fill_value)
