"""Observation readers, one module per product, behind one registry (as `xarray/backends/`).

`observations.<stream>.product` names the reader; `READERS` is the list the config check, the
`read` front door and the user guide (docs/user-guide/products.md) all go by. Each reader turns
the listed files of a stream into `StreamInput` records (per year or epoch: field(s),
uncertainty, grid, CRS); `fusion.data.load` then aligns them onto the ensemble's grid once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion.data.readers.atl15 import ATL15Reader
from fusion.data.readers.base import Reader, StreamInput, ThicknessYear, VelocityYear
from fusion.data.readers.itslive import ITSLiveReader
from fusion.data.readers.measures import MeasuresReader
from fusion.data.readers.prototype import PrototypeReader
from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["READERS", "PRODUCTS", "Reader", "StreamInput", "ThicknessYear", "VelocityYear", "reader", "read_stream"]

READERS: dict[str, Reader] = {r.name: r for r in (PrototypeReader(), ATL15Reader(), ITSLiveReader(), MeasuresReader())}
PRODUCTS: tuple[str, ...] = tuple(READERS)


def reader(product: str, stream: str, where: Path | str | None = None) -> Reader:
    """The reader of `product` for `stream`; an unknown product or one without that stream is bad input
    listing the valid ones (the config check catches most of these first)."""
    found = READERS.get(product)
    if found is None:
        raise InputError(where or "config", f"unknown product '{product}' (one of: {', '.join(PRODUCTS)})")
    if stream not in found.streams:
        able = ", ".join(n for n, r in READERS.items() if stream in r.streams)
        raise InputError(where or "config", f"product '{product}' has no {stream} (for {stream}: {able})")
    return found


def read_stream(cfg: "Config", stream: str, spec: Any, files: list[Path]) -> StreamInput:
    """The records of one observation stream, read by its product's reader; `crs:` in the config
    stands for the files' CRS (it wins over what they state)."""
    out = reader(spec.product, stream, cfg.source).read(cfg, stream, spec, files)
    if spec.crs is not None:
        out.crs, out.crs_from = spec.crs, "config"
    return out
