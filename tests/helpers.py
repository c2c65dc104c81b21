"""Helpers shared by the unit tests: paths of the bundled reference cases and tiny hand-made
datasets in the prototype's layout, with known values. Import them from here; `conftest.py`
keeps only the fixtures built on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import xarray as xr
import yaml

from harness.paths import repo_root

REPO = repo_root()
REFERENCE_CASES = ("small", "subsample")


def reference_inputs(case: str) -> Path:
    return REPO / "fixtures" / "cases" / case / "inputs"


def reference_posterior(case: str) -> Path:
    """The posterior the prototype's plug-in weights were computed at (the case's `reference/posterior.nc`)."""
    return golden_case(case) / "posterior.nc"


def golden_case(case: str) -> Path:
    return REPO / "golden" / case


def write_nc(path: Path, variables: dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, Any]]]) -> Path:
    """Write a NetCDF file from {name: (dims, values, attrs)}; dims are created from the shapes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as ds:
        for dims, values, _ in variables.values():
            for d, n in zip(dims, np.shape(values)):
                if d not in ds.dimensions:
                    ds.createDimension(d, n)
        for name, (dims, values, attrs) in variables.items():
            values = np.asarray(values)
            fill = attrs.pop("_FillValue", None)
            var = ds.createVariable(name, values.dtype, dims, fill_value=fill)
            var.set_auto_maskandscale(False)
            for k, v in attrs.items():
                var.setncattr(k, v)
            var[:] = values
    return path


class TinyCase:
    """A 2 × 3 grid, yearly observations and members whose rates are chosen by the test."""

    ny, nx = 2, 3

    def __init__(self, root: Path) -> None:
        self.root = root
        self.y = np.arange(self.ny, dtype=np.float64) * 1000.0
        self.x = np.arange(self.nx, dtype=np.float64) * 1000.0

    def coords(self) -> dict:
        return {"y": (("y",), self.y, {}), "x": (("x",), self.x, {})}

    def thickness(self, year: int, height: np.ndarray, rmse: np.ndarray | None) -> Path:
        vars_ = {**self.coords(), "height": (("time", "y", "x"), height[None].astype(np.float32), {"_FillValue": np.float32(-9999)})}
        if rmse is not None:
            vars_["absolute_elevation_rmse"] = (("time", "y", "x"), rmse[None].astype(np.float32), {"_FillValue": np.float32(-9999)})
        return write_nc(self.root / "obs/elev" / f"elev_antarctica_elevation_{year}.nc", vars_)

    def velocity(self, year: int, vx: np.ndarray, vy: np.ndarray, errx: np.ndarray | None, erry: np.ndarray | None) -> Path:
        vars_ = {**self.coords()}
        for name, arr in (("VX", vx), ("VY", vy), ("ERRX", errx), ("ERRY", erry)):
            if arr is not None:
                vars_[name] = (("y", "x"), np.asarray(arr, dtype=np.float32), {"_FillValue": np.float32(-9999)})
        return write_nc(self.root / "obs/vel" / f"vel_Antarctica_ice_velocity_{year}.nc", vars_)

    def member(self, number: int, times: np.ndarray, h: np.ndarray, ua: np.ndarray, va: np.ndarray,
               units: str | None = None, time_attrs: dict | None = None) -> Path:
        attrs = dict(time_attrs or {})
        if units is not None:
            attrs["units"] = units
        return write_nc(self.root / "ensemble" / f"run{number:02d}_regridded.nc", {
            **self.coords(),
            "time": (("time",), np.asarray(times, dtype=np.float64), attrs),
            "h": (("time", "y", "x"), np.asarray(h, dtype=np.float32), {}),
            "ua": (("time", "y", "x"), np.asarray(ua, dtype=np.float32), {}),
            "va": (("time", "y", "x"), np.asarray(va, dtype=np.float32), {}),
        })

    def config(self, compat: str = "prototype", **extra: Any) -> Path:
        body = {
            "compat": compat,
            "observations": {"thickness": {"dir": "obs/elev"}, "velocity": {"dir": "obs/vel"}},
            "ensemble": {"dir": "ensemble"},
            **extra,
        }
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(body))
        return path

    def standard(self, years: tuple[int, ...] = (2015, 2016, 2017), members: int = 2) -> "TinyCase":
        """Height falls 1 m/yr, velocity grows 2 m/yr; member k's rates are offset by k·0.1."""
        g = np.ones((self.ny, self.nx))
        for i, yr in enumerate(years):
            self.thickness(yr, 100.0 * g - i, 0.5 * g)
            self.velocity(yr, 50.0 * g + 2 * i, 20.0 * g + 2 * i, 1.0 * g, 1.0 * g)
        t = np.arange(len(years), dtype=np.float64) + years[0]
        for k in range(members):
            steps = (np.arange(len(years)) * (1 + 0.1 * k))[:, None, None] * g
            self.member(k + 1, t, 100.0 - steps, 50.0 + 2 * steps, 20.0 + 2 * steps)
        return self


def projection_dataset(sle: list[float], weight: list[float], weighted_mean: np.ndarray) -> xr.Dataset:
    """What `fusion.projection.project` returns, from per-member SLE, weights and Σ w·SLE draws."""
    members = [f"run{i + 1}" for i in range(len(sle))]
    return xr.Dataset(
        {
            "sle_mm": ("member", np.array(sle)),
            "weight": ("member", np.array(weight)),
            "weighted_mean": (("chain", "draw"), weighted_mean),
        },
        coords={"member": members},
        attrs={"lower_q": 0.05, "upper_q": 0.95, "target_year": 2100.0, "units": "mm"},
    )
