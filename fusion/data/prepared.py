"""The prepared arrays every inference step consumes, and their `.npz` form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.data.availability import Availability
from fusion.io import write_npz

__all__ = ["Prepared", "PointLayout", "THICK", "VEL"]

THICK: int = 0
VEL: int = 1


@dataclass(frozen=True)
class PointLayout:
    """Where each prepared point sits: its grid cell and its (stream, interval) block.

    What the correlation estimate and the `effective`/`blocks` likelihood forms need (errors
    are correlated between cells of one block, independent between blocks); not in the `.npz`.
    """

    pixel: np.ndarray  # int64 (N,): flat index into the (rows, cols) grid
    block: np.ndarray  # int64 (N,): index of the (stream, interval) block
    grid_shape: tuple[int, int]
    cell_size: float | None = None  # grid spacing in the files' x/y units, when they carry x/y
    #: per block: chosen / kept points (the subsample's rate; None: every kept point chosen)
    keep_rate: np.ndarray | None = None


@dataclass(frozen=True)
class Prepared:
    """Observed rates, their uncertainties and every member's modelled rates at the chosen points.

    `stream` labels each point (0 thickness, 1 velocity). Under `compat: prototype` it is the
    prototype's positional split (first `n_dhdt` points are "thickness", whatever they really
    are after the shuffled subsample); under `compat: fixed` it is the true label carried
    through the subsample. Downstream code reads `stream`, never `n_dhdt`. `availability` says
    which points survived the masks (fusion.data.availability); it rides along in the `.npz` as
    one JSON string, beside (never inside) the bit-exact arrays.
    """

    y_obs: np.ndarray  # float32 (N,)
    sigma_obs: np.ndarray  # float32 (N,)
    F: np.ndarray  # float64 (M, N)
    speed: np.ndarray  # float64 (N,)
    n_dhdt: int
    n_vel: int
    member_ids: tuple[str, ...]
    stream: np.ndarray  # int8 (N,)
    compat: str = "fixed"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    availability: Availability | None = field(default=None, compare=False)
    layout: PointLayout | None = field(default=None, compare=False)

    @property
    def n_points(self) -> int:
        return int(self.y_obs.shape[0])

    @property
    def n_members(self) -> int:
        return int(self.F.shape[0])

    @property
    def is_thick(self) -> np.ndarray:
        return self.stream == THICK

    def to_npz(self, path: str | Path) -> Path:
        """Write the DESIGN.md array set; `stream` only under `compat: fixed`."""
        arrays: dict[str, Any] = dict(
            y_obs=self.y_obs,
            sigma_obs=self.sigma_obs,
            F=self.F,
            speed=self.speed,
            n_dhdt=np.int64(self.n_dhdt),
            n_vel=np.int64(self.n_vel),
            member_ids=np.array(self.member_ids),
            compat=np.array(self.compat),
        )
        if self.compat == "fixed":
            arrays["stream"] = self.stream.astype(np.int8)
        if self.availability is not None:
            arrays["availability"] = np.array(json.dumps(self.availability.record, sort_keys=True))
        return write_npz(path, **arrays)

    @classmethod
    def from_npz(cls, path: str | Path) -> "Prepared":
        with np.load(path, allow_pickle=False) as z:
            n_dhdt, n_vel = int(z["n_dhdt"]), int(z["n_vel"])
            n = z["y_obs"].shape[0]
            compat = str(z["compat"]) if "compat" in z.files else "prototype"
            if "stream" in z.files:
                stream = z["stream"].astype(np.int8)
            else:
                stream = positional_stream(n, n_dhdt)
            ids = tuple(str(s) for s in z["member_ids"]) if "member_ids" in z.files else tuple(
                f"run{i + 1}" for i in range(z["F"].shape[0])
            )
            availability = (
                Availability(record=json.loads(str(z["availability"]))) if "availability" in z.files else None
            )
            return cls(
                y_obs=z["y_obs"], sigma_obs=z["sigma_obs"], F=z["F"], speed=z["speed"],
                n_dhdt=n_dhdt, n_vel=n_vel, member_ids=ids, stream=stream, compat=compat,
                availability=availability,
            )


def positional_stream(n_points: int, n_dhdt: int) -> np.ndarray:
    """The prototype's labels: the first `n_dhdt` points are thickness, the rest velocity."""
    stream = np.full(n_points, VEL, dtype=np.int8)
    stream[:n_dhdt] = THICK
    return stream
