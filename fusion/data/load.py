"""The load stage: list → read → align, each step once, for every product alike.

1. list: every input's files (observation streams and members), local or fetched through the
   cache (`fusion.data.remote`);
2. read: each observation stream by its product's reader (`fusion.data.readers`: per year or
   epoch, field(s) and uncertainty on their grid with a CRS), then the members' time axes;
3. align: orientation, CRS check and grid (or `observations.regrid`) onto one grid
   (`fusion.data.regrid.align`).
`prepare` follows. Observation fields stay in their files (`fusion.data.fields`) and are read a
block of grid rows at a time, so memory is set by `prepare`'s blocks, not by the products' size.

`load_data` returns `EnsembleData`, a read-only mapping with the keys "obs" (per stream, an
xarray.Dataset of the aligned observations) and "ensemble" (an xarray.Dataset of the members'
fields, dask-backed, with a `member` coordinate of member ids such as "run1") — the ice-fusion
interface — that also carries what `prepare` reads. Every problem is an `InputError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.config import Config
from fusion.data.fields import RowField
from fusion.data.grid import Grid
from fusion.data.readers.base import StreamInput, ThicknessYear, VelocityYear
from fusion.data.readers.members import Member, member_id
from fusion.errors import InputError

__all__ = ["Grid", "RowField", "ThicknessYear", "VelocityYear", "Member", "EnsembleData", "load_data", "member_id"]


@dataclass
class EnsembleData(Mapping):
    """Aligned observations and validated members; as a mapping, the ice-fusion view of them:
    `data["obs"]` (stream name → xarray.Dataset) and `data["ensemble"]` (xarray.Dataset with a
    `member` coordinate), both built on first access."""

    thickness: list[ThicknessYear]
    velocity: list[VelocityYear]
    members: list[Member]
    grid: Grid
    input_files: list[Path] = field(default_factory=list)
    streams: list[StreamInput] = field(default_factory=list)
    crs: dict[str, Any] = field(default_factory=dict)
    _views: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    KEYS = ("obs", "ensemble")

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.member_id for m in self.members)

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(key)
        if key not in self._views:
            from fusion.data import views

            self._views[key] = views.observations(self) if key == "obs" else views.ensemble(self)
        return self._views[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def provenance(self) -> list[dict[str, Any]]:
        """Per observation file: stream, product, the release/version tokens of its name (SHA-256s
        are added where the run's inputs are digested, `fusion.pipeline`)."""
        out = []
        for s in self.streams:
            for path in s.files:
                out.append({"file": getattr(path, "url", None) or str(path), "stream": s.stream,
                            "product": s.product, "tokens": s.tokens.get(path, {})})
        return out


def _list(cfg: Config, spec: Any, key: str, hidden: bool = True) -> list[Path]:
    from fusion.data.remote import list_inputs

    return list_inputs(spec.dir, spec.pattern, key, cfg.source, storage_options=spec.storage_options,
                       cache_dir=cfg.cache.dir, hidden=hidden)


def _check_epochs(cfg: Config, thick: StreamInput, members: list[Member]) -> None:
    """A product's epochs (or rate midpoints) must meet the reference member's steps (intervals):
    none within `metric.snap_tolerance_years` is bad input naming the file."""
    if thick.product == "prototype" or not thick.records:
        return
    times = members[0].times
    rate = thick.records[0].rate
    targets = (times[:-1] + times[1:]) / 2 if rate else times
    epochs = np.array([r.year for r in thick.records], dtype=np.float64)
    tol = cfg.metric.snap_tolerance_years
    if not any(np.min(np.abs(epochs - t)) <= tol for t in targets):
        what = "interval midpoints" if rate else "steps"
        raise InputError(thick.files[0], f"no epoch ({epochs.min():.3f}..{epochs.max():.3f}) within {tol:g} years "
                                         f"of the ensemble's {what} ({targets.min():.3f}..{targets.max():.3f})")


def load_data(cfg: Config, lazy: bool = False) -> EnsembleData:
    """List, read and align the observations and validate every member (grid, variables, time axis).

    Parameters
    ----------
    cfg : Config
        The run's configuration: where the observations and the ensemble are, their products and
        variables.
    lazy : bool, default False
        Leave observation fields in their files (`RowField`), read by `prepare` a block of rows at
        a time (what `fusion run`/`prepare` do, memory bounded); without it they are held (the same
        values). Regridded fields are held (they are on the ensemble's grid).

    Returns
    -------
    EnsembleData
        A mapping with "obs" (one Dataset per stream) and "ensemble" (a Dataset on `member`), which
        also carries the observation years, the members and the shared grid `prepare` reads.

    Raises
    ------
    InputError
        A folder, file, group or variable is missing, a file is corrupt, or the grids or CRSs do not match.
    """
    from fusion.data.readers import read_stream
    from fusion.data.readers.members import ensemble_grid, read_member
    from fusion.data.regrid import align

    obs = cfg.observations
    # 1. list
    listed = {
        "thickness": _list(cfg, obs.thickness, "observations.thickness"),
        "velocity": _list(cfg, obs.velocity, "observations.velocity"),
    }
    member_paths = _list(cfg, cfg.ensemble, "ensemble", hidden=cfg.compat == "fixed")
    # 2. read (observations first, as the prototype reads them first)
    streams = [read_stream(cfg, name, getattr(obs, name), files) for name, files in listed.items()]
    members = [read_member(cfg, p) for p in member_paths]
    if len(members) < 2:
        raise InputError(cfg.ensemble.dir, f"only {len(members)} member matches '{cfg.ensemble.pattern}'; weighting needs at least 2")
    seen: dict[str, Path] = {}
    for m in members:
        if m.member_id in seen:
            raise InputError(m.path, f"duplicate member id {m.member_id} (also from {seen[m.member_id].name})")
        seen[m.member_id] = m.path
    _check_epochs(cfg, streams[0], members)
    # 3. align
    aligned = align(cfg, streams, members, ensemble_grid(cfg, member_paths[0]))
    thickness, velocity = aligned.thickness, aligned.velocity
    if not lazy:
        thickness, velocity = _held(thickness), _held(velocity)
    files = [f for s in streams for f in s.files] + [m.path for m in members]
    return EnsembleData(thickness, velocity, members, aligned.grid, files, streams, aligned.crs)


def _held(records: list[Any]) -> list[Any]:
    """Records with every field read whole (the eager path: the same values as read by rows)."""
    from dataclasses import fields, replace

    def whole(v: Any) -> Any:
        return v[slice(None)] if hasattr(v, "with_flip") else v

    return [replace(r, **{f.name: whole(getattr(r, f.name)) for f in fields(r) if hasattr(getattr(r, f.name), "with_flip")})
            for r in records]
