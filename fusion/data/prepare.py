"""Observed and modelled rates on the model's intervals, masked, laid out and subsampled.

Reproduces the prototype's arrays bit for bit under `compat: prototype` (arithmetic order and
dtypes included: see DESIGN.md "prepare, as the prototype does it"), and applies the fixes of
its known defects 1–3 under `compat: fixed`. Members are streamed twice — once to build the
mask, once to gather only the chosen points — so memory stays near one member's fields, not
members × grid × intervals. With `chunk_rows` both passes go by blocks of grid rows (members
and, loaded lazily, observations read a block at a time) and the subsample counts the kept
points before choosing among them, so memory is set by the block, not by the grid; the
result is the same bits either way. Each pass is one function of a block of rows (`_mask_rows`,
`_gather_rows`) whose results are combined by block position, so with `scheduler` the blocks
run on a dask cluster (`fusion.data.cluster`), workers reading their rows from the files, and
the bits are the same again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fusion.config import Config
from fusion.data.availability import STREAM_NAMES, Availability, availability_record
from fusion.data.cluster import map_blocks
from fusion.data.load import EnsembleData, Member
from fusion.data.prepared import THICK, VEL, PointLayout, Prepared, positional_stream
from fusion.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["prepare", "Interval", "model_intervals", "snap_year"]


@dataclass(frozen=True)
class Interval:
    """One step of the reference member's time axis."""

    start: float
    end: float

    @property
    def dt(self) -> float:
        return self.end - self.start

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class _Block:
    """One stream component on one interval: the unit of the prototype's layout."""

    stream: int
    interval: int
    variable: int  # 0 thickness, 1 vx, 2 vy: index into Member.variables
    missing: str | None = None  # why the observed rate is all NaN (snapping), for the availability record


def _vel_blocks(blocks: list[_Block]) -> np.ndarray:
    """Per block of the layout: is it velocity."""
    return np.array([b.stream == VEL for b in blocks])


def model_intervals(times: np.ndarray) -> list[Interval]:
    return [Interval(float(a), float(b)) for a, b in zip(times[:-1], times[1:])]


def snap_year(years: np.ndarray, t: float, tolerance: float) -> float | None:
    """Nearest observation year (or a product's epoch, a decimal year) to a model time, or None
    beyond the tolerance (first on ties); a whole year comes back as an int."""
    i = int(np.argmin(np.abs(years - t)))
    if abs(years[i] - t) > tolerance:
        return None
    year = float(years[i])
    return int(year) if year.is_integer() else year


def _observed_rate(
    first: np.ndarray, second: np.ndarray, err_first: np.ndarray, err_second: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rate and its uncertainty; `step` is a Python float so float32 inputs stay float32 (as the prototype).

    A float32 square that overflows is inf: masked by the threshold, or filled under `compat: prototype`.
    """
    with np.errstate(over="ignore"):
        return (second - first) / step, np.sqrt(err_first**2 + err_second**2) / step


class _RowReader:
    """Observed fields and rates on one block of grid rows, each field read once (a field left in
    its file is opened once per block, not once per interval that uses it)."""

    def __init__(self, cfg: Config, rows: slice, shape: tuple[int, int]) -> None:
        self.rows, self.shape = rows, shape
        self.tolerance, self.fixed = cfg.metric.snap_tolerance_years, cfg.compat == "fixed"
        self._memo: dict[int, np.ndarray] = {}

    def on_rows(self, field):
        """`field[rows]`, read on first use."""
        if id(field) not in self._memo:
            self._memo[id(field)] = field[self.rows]
        return self._memo[id(field)]

    def _nan_pair(self, like: np.ndarray, why: str) -> tuple[np.ndarray, np.ndarray, str]:
        return np.full(self.shape, np.nan, like.dtype), np.full(self.shape, np.nan, like.dtype), why

    def rate(self, by_year: dict, years: np.ndarray, iv: Interval, get) -> tuple[np.ndarray, np.ndarray, str | None]:
        """Rate and uncertainty of one component on `iv` (DESIGN step 2), or all NaN and why: an end
        with no observation year within the snap tolerance, or (fixed) both ends on the same year."""
        tol = self.tolerance
        y1 = snap_year(years, iv.start, tol)
        y2 = snap_year(years, iv.end, tol)
        like = get(next(iter(by_year.values())))[0]
        if y1 is None or y2 is None:
            t = iv.start if y1 is None else iv.end
            return self._nan_pair(like, f"no observation year within {tol:g} years of {t:.3f}")
        if self.fixed and y1 == y2:
            return self._nan_pair(like, f"both ends snap to the observation year {y1}")
        (v1, e1), (v2, e2) = get(by_year[y1]), get(by_year[y2])
        step = float(y2 - y1) if self.fixed else iv.dt
        v1, v2 = self.on_rows(v1), self.on_rows(v2)
        e1, e2 = (np.full_like(v, np.nan) if e is None else self.on_rows(e) for v, e in ((v1, e1), (v2, e2)))
        return *_observed_rate(v1, v2, e1, e2, step), None

    def product_rate(self, by_mid: dict, mids: np.ndarray, iv: Interval) -> tuple[np.ndarray, np.ndarray, str | None]:
        """A product's own rate (ATL15 `dhdt_lag*`) as the observed rate of `iv`: the one whose
        midpoint is nearest the interval's, within half the interval and the snap tolerance."""
        tol = min(self.tolerance, iv.dt / 2)
        like = np.empty(0, np.float32)
        mid = snap_year(mids, iv.mid, tol)
        if mid is None:
            return self._nan_pair(like, f"no product rate with its midpoint within {tol:g} years of {iv.mid:.3f}")
        record = by_mid[mid]
        rate = self.on_rows(record.height)
        sigma = np.full_like(rate, np.nan) if record.uncertainty is None else self.on_rows(record.uncertainty)
        return rate, sigma, None


def _observed_blocks(cfg: Config, data: EnsembleData, intervals: list[Interval], rows: slice = slice(None),
                     thick_fill: float | None | str = "whole grid", thickness_only: bool = False
                     ) -> tuple[list[_Block], np.ndarray, np.ndarray, np.ndarray | None]:
    """Observed rates `y`, uncertainties `sigma` and `speed` on the grid rows `rows`, each (blocks, pixels).

    Every value is elementwise in its pixel, so a block of rows gives the same bits as the whole
    grid; the one global figure, the thickness uncertainty's gap fill, comes in as `thick_fill`
    (`_thick_fill`; by default that of the whole grid); None leaves the gaps unfilled.
    """
    if isinstance(thick_fill, str):
        thick_fill = _thick_fill(cfg, data, intervals, [slice(None)])
    shape = (len(range(*rows.indices(data.grid.shape[0]))), data.grid.shape[1])
    reader = _RowReader(cfg, rows, shape)
    blocks, ys, thick_sigma = _thickness_blocks(reader, data, intervals)
    if thick_fill is not None:
        # the prototype fills every non-finite value (an rmse whose square overflows float32 is inf)
        gap = np.isnan(thick_sigma) if reader.fixed else ~np.isfinite(thick_sigma)
        thick_sigma[gap] = thick_fill
    if thickness_only:
        return blocks, np.stack(ys), thick_sigma, None
    vel_blocks, vel_ys, vel_sigmas = _velocity_blocks(reader, data, intervals)
    sigmas = [*thick_sigma, *vel_sigmas]
    return blocks + vel_blocks, np.stack(ys + vel_ys), np.stack(sigmas), _mean_speed(reader, data)


def _thickness_blocks(reader: _RowReader, data: EnsembleData, intervals: list[Interval]
                      ) -> tuple[list[_Block], list[np.ndarray], np.ndarray]:
    """The thickness block of every interval (the layout's first blocks): rates and the
    uncertainty, its gaps still NaN (filled by the caller, with a figure of the whole grid)."""
    n_pix = reader.shape[0] * reader.shape[1]
    thick = {t.year: t for t in data.thickness}
    thick_years = np.array(sorted(thick), dtype=np.float64)

    def thick_fields(t):
        return t.height, t.uncertainty  # no uncertainty variable: NaN (filled by the caller)

    rates = bool(data.thickness) and data.thickness[0].rate
    blocks, ys, sigmas = [], [], []
    for i, iv in enumerate(intervals):
        y, s, why = (reader.product_rate(thick, thick_years, iv) if rates
                     else reader.rate(thick, thick_years, iv, thick_fields))
        blocks.append(_Block(THICK, i, 0, why))
        ys.append(y.reshape(n_pix))
        sigmas.append(s.reshape(n_pix))
    return blocks, ys, np.stack(sigmas)


def _velocity_blocks(reader: _RowReader, data: EnsembleData, intervals: list[Interval]
                     ) -> tuple[list[_Block], list[np.ndarray], list[np.ndarray]]:
    """The velocity blocks, interval by interval, x then y within each (the prototype's layout)."""
    n_pix = reader.shape[0] * reader.shape[1]
    vel = {v.year: v for v in data.velocity}
    vel_years = np.array(sorted(vel), dtype=np.float64)
    blocks, ys, sigmas = [], [], []
    for i, iv in enumerate(intervals):
        for variable, get in ((1, lambda v: (v.vx, v.err_x)), (2, lambda v: (v.vy, v.err_y))):
            y, s, why = reader.rate(vel, vel_years, iv, get)
            blocks.append(_Block(VEL, i, variable, why))
            ys.append(y.reshape(n_pix))
            sigmas.append(s.reshape(n_pix))
    return blocks, ys, sigmas


def _mean_speed(reader: _RowReader, data: EnsembleData) -> np.ndarray:
    """Speed per pixel (DESIGN step 4): the mean over observation years of √(VX² + VY²)."""
    vel = {v.year: v for v in data.velocity}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN and are masked
        # one field per listed year, looked up by year: under `compat: prototype` a repeated year
        # is its last file, counted once per repeat, as the prototype's dict and year list
        speed = np.nanmean(
            np.stack([np.sqrt(reader.on_rows(vel[v.year].vx) ** 2 + reader.on_rows(vel[v.year].vy) ** 2)
                      for v in data.velocity]), axis=0
        )
    return speed.reshape(reader.shape[0] * reader.shape[1])


def _thick_values(work: _Work, rows: slice) -> np.ndarray:
    """The non-NaN values of the thickness uncertainty on the grid rows `rows` (for `_thick_fill`)."""
    thick = _observed_blocks(work.cfg, work.data, work.intervals, rows, None, thickness_only=True)[2]
    return thick[~np.isnan(thick)]


def _thick_fill(cfg: Config, data: EnsembleData, intervals: list[Interval], chunks: list[slice],
                client: Client | None = None, bar: _Bar | None = None) -> float | None:
    """The value every gap in the thickness uncertainty gets (DESIGN step 3), over the whole grid:
    `missing_thick_unc` when it is all NaN, else the median of its non-NaN values (taken by
    NumPy over the same values, in row order, as on the whole array, so chunked and whole give
    the same bits)."""
    work = _Work(cfg, data, intervals, [], None)
    kept: list[np.ndarray | None] = [None] * len(chunks)
    done = map_blocks(client, _thick_values, work, [(rows,) for rows in chunks])
    for i, values in done if bar is None else bar.step(done):
        kept[i] = values
    # joined in row order one block at a time, each freed once copied, and the median taken in
    # place: never two copies of every value (the same values, so the same median)
    values = np.empty(sum(v.size for v in kept), dtype=np.result_type(*{v.dtype for v in kept}))
    at = 0
    for i, part in enumerate(kept):
        values[at:at + part.size] = part
        at += part.size
        kept[i] = None
    part = None
    return cfg.metric.missing_thick_unc if values.size == 0 else np.nanmedian(values, overwrite_input=True)


PROTOTYPE_MIDPOINT_TOLERANCE: float = 1e-3  # years: the prototype's reindex tolerance (defect 3)


def _interval_rows(member: Member, intervals: list[Interval], cfg: Config) -> list[tuple[int, int] | None]:
    """For each reference interval, the member's (start, end) rows to difference, or None.

    Prototype: same length → position i; otherwise the member interval with the nearest
    midpoint within 1e-3 years, None (all NaN, so masked for every member) when there is
    none (defect 3). Fixed: rows found by time value within `time_tolerance_years`.
    """
    t = member.times
    if cfg.compat == "prototype":
        if len(t) == len(intervals) + 1:
            return [(i, i + 1) for i in range(len(intervals))]
        mids = pd.Index((t[:-1] + t[1:]) / 2)
        nearest = mids.get_indexer(
            [iv.mid for iv in intervals], method="nearest", tolerance=PROTOTYPE_MIDPOINT_TOLERANCE
        )
        return [None if j < 0 else (int(j), int(j) + 1) for j in nearest]
    tol = cfg.metric.time_tolerance_years
    rows = []
    for iv in intervals:
        pair = []
        for ref in (iv.start, iv.end):
            j = int(np.argmin(np.abs(t - ref)))
            if abs(t[j] - ref) > tol:
                raise InputError(
                    member.path,
                    f"time axis disagrees with the reference member: no step within {tol} years of "
                    f"{ref:.4f} (nearest {t[j]:.4f}; metric.time_tolerance_years)",
                )
            pair.append(j)
        rows.append((pair[0], pair[1]))
    return rows


def _member_rates(member: Member, intervals: list[Interval], blocks: list[_Block], cfg: Config,
                  grid_rows: slice = slice(None)) -> Iterator[tuple[int, np.ndarray]]:
    """(block index, float32 rate field flattened) for every block on the grid rows `grid_rows`,
    one variable (of those rows) in memory at a time."""
    rows = _interval_rows(member, intervals, cfg)
    t = member.times
    by_variable: dict[int, list[int]] = {}
    for b, block in enumerate(blocks):
        by_variable.setdefault(block.variable, []).append(b)
    for variable, (_, field) in enumerate(member.fields(grid_rows)):
        field = field.astype(np.float32, copy=False)  # differenced in float32 (step 1)
        for b in by_variable.get(variable, []):
            pair = rows[blocks[b].interval]
            if pair is None:  # no member interval near this one: NaN, dropped for every member
                yield b, np.full(field.shape[1] * field.shape[2], np.nan, dtype=np.float32)
                continue
            j1, j2 = pair
            # difference in float32, divide by the float64 step, store float32 (the prototype's order)
            rate = ((field[j2] - field[j1]) / (t[j2] - t[j1])).astype(np.float32)
            yield b, rate.reshape(-1)
        del field


def _cell_size(grid) -> float | None:
    """The x spacing of the grid in its files' units, when the files carry an x coordinate."""
    x = getattr(grid, "x", None)
    if x is None or np.size(x) < 2:
        return None
    return float(abs(np.asarray(x, dtype=np.float64)[1] - np.asarray(x, dtype=np.float64)[0]))


@dataclass(frozen=True)
class _Work:
    """What the work on any block of rows reads: the settings, the inputs (paths and times; fields
    stay in their files when loaded lazily), the intervals and the layout. Small, so a dask
    cluster gets it once and each worker reads its own rows (`fusion.data.cluster`)."""

    cfg: Config
    data: EnsembleData
    intervals: list[Interval]
    blocks: list[_Block]
    thick_fill: float | None


@dataclass(frozen=True)
class _RowsMask:
    """Pass 1 on a block of rows: which of its points every rule and every member keep."""

    part: np.ndarray  # bool (blocks, pixels of the rows)
    kept_after: np.ndarray  # int64 (5, blocks): survivors after each rule, in availability.RULES order
    first_empty: np.ndarray  # per block: the member after which these rows keep none; n_members if some stay


def _mask_rows(work: _Work, rows: slice, fields: tuple | None = None) -> _RowsMask:
    """The mask rule by rule on `rows`; counting the survivors per block after each rule
    attributes every dropped point to the first rule that drops it. `fields`: the observed
    fields of these rows when the caller holds them already (the in-memory run)."""
    cfg, data, blocks = work.cfg, work.data, work.blocks
    metric = cfg.metric
    is_vel = _vel_blocks(blocks)
    threshold = np.where(is_vel, metric.vel_unc_threshold, metric.thick_unc_threshold)[:, None]
    kept_after = np.zeros((5, len(blocks)), dtype=np.int64)
    _, y_obs, sigma_obs, speed = fields or _observed_blocks(cfg, data, work.intervals, rows, work.thick_fill)
    part = np.isfinite(y_obs)
    kept_after[0] = np.count_nonzero(part, axis=1)
    part &= np.isfinite(sigma_obs)
    kept_after[1] = np.count_nonzero(part, axis=1)
    with np.errstate(invalid="ignore"):
        part &= sigma_obs < threshold
    kept_after[2] = np.count_nonzero(part, axis=1)
    part[is_vel] &= np.isfinite(speed)[None, :]
    kept_after[3] = np.count_nonzero(part, axis=1)
    del y_obs, sigma_obs, speed
    n_members = len(data.members)
    first_empty = np.where(part.any(axis=1), n_members, -1)
    for m, member in enumerate(data.members):
        for b, rate in _member_rates(member, work.intervals, blocks, cfg, rows):
            part[b] &= np.isfinite(rate)
            if first_empty[b] == n_members and not part[b].any():
                first_empty[b] = m
    kept_after[4] = np.count_nonzero(part, axis=1)
    return _RowsMask(part, kept_after, first_empty)


def _gather_rows(work: _Work, rows: slice, local: np.ndarray, block: np.ndarray,
                 fields: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pass 2 on a block of rows: `y_obs`, `sigma_obs`, `speed` and `F` (members × points) at the
    chosen points lying there, each given by its pixel within the rows and its block."""
    cfg, data, blocks = work.cfg, work.data, work.blocks
    is_vel = _vel_blocks(blocks)
    _, y_obs, sigma_obs, speed = fields or _observed_blocks(cfg, data, work.intervals, rows, work.thick_fill)
    y_point = y_obs[block, local].astype(np.float32)
    sigma_point = sigma_obs[block, local].astype(np.float32)
    speed_point = np.where(is_vel[block], speed[local], 0.0).astype(np.float64)
    del y_obs, sigma_obs, speed
    F = np.empty((len(data.members), local.size), dtype=np.float64)
    where = {b: np.flatnonzero(block == b) for b in np.unique(block)}
    for m, member in enumerate(data.members):
        for b, rate in _member_rates(member, work.intervals, blocks, cfg, rows):
            sel = where.get(b)
            if sel is not None:
                F[m, sel] = rate[local[sel]]
    return y_point, sigma_point, speed_point, F


def row_chunks(n_rows: int, chunk_rows: int | None) -> list[slice]:
    """Blocks of whole grid rows, in order; None is one block of every row (the in-memory run)."""
    if chunk_rows is None or chunk_rows >= n_rows:
        return [slice(None)]
    return [slice(r, min(r + chunk_rows, n_rows)) for r in range(0, n_rows, chunk_rows)]


CLUSTER_CHUNK_ROWS: int = 256  # rows per block on a cluster when none are given (a task each)


def prepare(cfg: Config, data: EnsembleData, chunk_rows: int | None = None, scheduler: str | None = None,
            progress: bool = False) -> Prepared:
    """Build the arrays handed to inference (see module docstring).

    Parameters
    ----------
    cfg : Config
        The run's configuration (masks, subsample, `compat`, `memory.budget_gb`).
    data : EnsembleData
        `load_data`'s result.
    chunk_rows : int, optional
        Stream the grid by blocks of that many rows (member fields are read a block at a time), so
        the working set is set by the chunk, not by the grid; every value is elementwise in its
        pixel and the point order is the same, so the result is the same bits as in memory.
        Without it, the rows follow from `memory.budget_gb` (`fusion.data.budget`; one block when
        the grid fits).
    scheduler : str, optional
        A dask.distributed address: run the blocks' work on that cluster (`fusion.data.cluster`;
        blocks of `CLUSTER_CHUNK_ROWS` unless `chunk_rows` says), the same bits again.
    progress : bool, default False
        A bar of blocks done on stderr when it is a terminal and there is more than one block.

    Returns
    -------
    Prepared
        Observed rates, uncertainties, every member's modelled rates and the stream of each
        chosen point, with the availability record.
    """
    if scheduler is None:
        if chunk_rows is None:  # bounded by default: blocks of rows from `memory.budget_gb`
            from fusion.data.budget import rows_for_budget

            chunk_rows = rows_for_budget(cfg, data)
        return _prepare(cfg, data, chunk_rows, None, progress)
    from fusion.data.cluster import connect

    with connect(scheduler) as client:
        return _prepare(cfg, data, chunk_rows or CLUSTER_CHUNK_ROWS, client, progress)


class _Bar:
    """Blocks done over the three passes (fill, mask, gather): tqdm's bar, on a terminal only."""

    def __init__(self, blocks: int, on: bool) -> None:
        import sys

        self.bar = None
        if on and blocks > 1 and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=3 * blocks, desc="prepare: blocks of rows", unit="block", file=sys.stderr, leave=False)

    def step(self, items: Iterator) -> Iterator:
        for item in items:
            if self.bar is not None:
                self.bar.update(1)
            yield item

    def done_early(self, skipped: int) -> None:
        """Blocks of the last pass with no chosen point: not run."""
        if self.bar is not None:
            self.bar.total -= skipped
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _prepare(cfg: Config, data: EnsembleData, chunk_rows: int | None, client: Client | None,
             progress: bool = False) -> Prepared:
    reference = data.members[0]
    intervals = model_intervals(reference.times)
    ny, nx = data.grid.shape
    chunks = row_chunks(ny, chunk_rows)
    bar = _Bar(len(chunks), progress)
    try:
        return _prepare_blocks(cfg, data, intervals, chunks, client, bar)
    finally:
        bar.close()


def _prepare_blocks(cfg: Config, data: EnsembleData, intervals: list[Interval], chunks: list[slice],
                    client: Client | None, bar: _Bar) -> Prepared:
    """The passes over the blocks of rows, in DESIGN's order: the gap fill of the thickness
    uncertainty, the mask (pass 1), the subsample, the chosen points' values (pass 2)."""
    thick_fill = _thick_fill(cfg, data, intervals, chunks, client, bar)
    blocks = _observed_blocks(cfg, data, intervals, slice(0, 0), None)[0]
    work = _Work(cfg, data, intervals, blocks, thick_fill)
    # in memory (one block, in this process), pass 2 reuses pass 1's observed fields, as before chunking
    whole = len(chunks) == 1 and client is None
    fields = _observed_blocks(cfg, data, intervals, chunks[0], thick_fill) if whole else None
    masked = _mask_pass(work, chunks, fields, client, bar)
    chosen = _subsample(cfg, masked, _vel_blocks(blocks), chunks, data.grid.shape)
    masked.packed.clear()  # the masks' bits are not needed past the subsample: freed before pass 2
    values = _gather_pass(work, chunks, chosen, fields, client, bar)
    return _prepared(cfg, work, masked, chosen, values)


@dataclass(frozen=True)
class _Masked:
    """Pass 1 combined over the blocks of rows: what the mask kept, per block of rows and per block."""

    packed: list[np.ndarray]  # per block of rows: its mask, 8 pixels a byte
    kept_in: np.ndarray  # (blocks of rows, blocks): points kept
    kept_after: np.ndarray  # (5, blocks): survivors after each rule
    emptied_by: dict[int, str]  # block: the member after which no point of it is left
    maps: dict[str, np.ndarray]  # stream name: kept points per cell, flat

    @property
    def per_block(self) -> np.ndarray:
        return self.kept_after[4]


def _mask_pass(work: _Work, chunks: list[slice], fields: tuple | None, client: Client | None,
               bar: _Bar) -> _Masked:
    """Pass 1, block by block (`_mask_rows`), combined in row order whatever order blocks finish in.
    A block is emptied by the first member after which no chunk keeps a point of it."""
    data, blocks = work.data, work.blocks
    ny, nx = data.grid.shape
    is_vel = _vel_blocks(blocks)
    n_blocks, n_members = len(blocks), len(data.members)
    packed: list[np.ndarray] = [np.empty(0, np.uint8)] * len(chunks)
    kept_in = np.zeros((len(chunks), n_blocks), dtype=np.int64)
    kept_after = np.zeros((5, n_blocks), dtype=np.int64)
    empty_after = np.full(n_blocks, -1)  # per block: the latest first-emptying member over chunks
    never_empty = np.zeros(n_blocks, dtype=bool)
    maps = {name: np.zeros(ny * nx, dtype=np.int32) for name in STREAM_NAMES}
    for i, done in bar.step(map_blocks(client, _mask_rows, work, [(rows, fields) for rows in chunks])):
        lo, hi, _ = chunks[i].indices(ny)
        kept_after += done.kept_after
        never_empty |= done.first_empty == n_members
        empty_after = np.maximum(empty_after, np.where(done.first_empty < n_members, done.first_empty, -1))
        packed[i] = np.packbits(done.part, axis=1)
        kept_in[i] = done.kept_after[4]
        for s, name in enumerate(STREAM_NAMES):
            maps[name][lo * nx:hi * nx] = np.count_nonzero(done.part[is_vel == (s == VEL)], axis=0)
        del done
    emptied_by = {
        b: data.member_ids[int(empty_after[b])]
        for b in range(n_blocks)
        if kept_after[3][b] and not never_empty[b] and empty_after[b] >= 0
    }
    return _Masked(packed, kept_in, kept_after, emptied_by, maps)


@dataclass(frozen=True)
class _Chosen:
    """The subsample: each chosen point's position in the kept list, its block and its pixel."""

    positions: np.ndarray
    block_of: np.ndarray
    pixel: np.ndarray
    n_total: int  # kept points before the subsample
    n_dhdt_full: int  # of which thickness (their blocks come first)
    subsampled: bool


def _subsample(cfg: Config, masked: _Masked, is_vel: np.ndarray, chunks: list[slice],
               grid_shape: tuple[int, int]) -> _Chosen:
    """Count first, then choose (DESIGN step 6): the positions are those of the block-major, then
    pixel, list of kept points (the prototype's layout), which is never built."""
    per_block = masked.per_block
    n_total = int(per_block.sum())
    if n_total == 0:
        raise InputError(cfg.source, "no valid points: every observation is NaN, above its threshold or unmatched by a member")
    n_dhdt_full = int(per_block[~is_vel].sum())  # thickness blocks come first
    size = cfg.inference.subsample.size
    subsampled = n_total > size
    if subsampled:
        rng = np.random.default_rng(seed=cfg.inference.subsample.seed)
        chosen_pos = rng.choice(n_total, size, replace=False)
    else:
        chosen_pos = np.arange(n_total)
    starts = np.concatenate([[0], np.cumsum(per_block)])
    block_of = np.searchsorted(starts, chosen_pos, side="right") - 1
    pixel = _chosen_pixels(masked, chunks, grid_shape, chosen_pos, starts, block_of)
    return _Chosen(chosen_pos, block_of, pixel, n_total, n_dhdt_full, subsampled)


def _chosen_pixels(masked: _Masked, chunks: list[slice], grid_shape: tuple[int, int], chosen_pos: np.ndarray,
                   starts: np.ndarray, block_of: np.ndarray) -> np.ndarray:
    """The pixel of every chosen point. A point's rank in its block's list falls in one block of
    rows (rows in order, then pixels), whose mask is unpacked for that block only."""
    ny, nx = grid_shape
    kept_in = masked.kept_in
    pixel = np.empty(chosen_pos.size, dtype=np.int64)
    kept_before = np.cumsum(kept_in, axis=0) - kept_in  # (blocks of rows, blocks)
    for b in np.unique(block_of):
        sel = np.flatnonzero(block_of == b)
        rank = chosen_pos[sel] - starts[b]
        rows_of = np.searchsorted(np.cumsum(kept_in[:, b]), rank, side="right")
        for c in np.unique(rows_of):
            lo, hi, _ = chunks[c].indices(ny)
            here = rows_of == c
            kept_here = np.flatnonzero(np.unpackbits(masked.packed[c][b], count=(hi - lo) * nx))
            pixel[sel[here]] = lo * nx + kept_here[rank[here] - kept_before[c, b]]
    return pixel


def _gather_pass(work: _Work, chunks: list[slice], chosen: _Chosen, fields: tuple | None, client: Client | None,
                 bar: _Bar) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pass 2, block by block (`_gather_rows`): `y_obs`, `sigma_obs`, `speed` and `F` at the chosen
    points only, each given by its pixel within the block's rows; blocks with none are not run."""
    ny, nx = work.data.grid.shape
    n = int(chosen.positions.size)
    F = np.empty((len(work.data.members), n), dtype=np.float64)
    y_point = np.empty(n, dtype=np.float32)
    sigma_point = np.empty(n, dtype=np.float32)
    speed_point = np.empty(n, dtype=np.float64)
    pixel, block_of = chosen.pixel, chosen.block_of
    points, tasks = [], []
    for rows in chunks:
        lo, hi, _ = rows.indices(ny)
        in_chunk = np.flatnonzero((pixel >= lo * nx) & (pixel < hi * nx))
        if in_chunk.size:
            points.append(in_chunk)
            tasks.append((rows, pixel[in_chunk] - lo * nx, block_of[in_chunk], fields))
    bar.done_early(len(chunks) - len(tasks))
    for i, (y_rows, sigma_rows, speed_rows, F_rows) in bar.step(map_blocks(client, _gather_rows, work, tasks)):
        in_chunk = points[i]
        y_point[in_chunk], sigma_point[in_chunk], speed_point[in_chunk] = y_rows, sigma_rows, speed_rows
        F[:, in_chunk] = F_rows
    return y_point, sigma_point, speed_point, F


def _availability(work: _Work, masked: _Masked, chosen: _Chosen) -> Availability:
    """The data-availability record (docs/user-guide/data.md, "Data availability") and the kept points per cell."""
    blocks, shape = work.blocks, work.data.grid.shape
    record = availability_record(
        block_stream=[b.stream for b in blocks],
        block_interval=[b.interval for b in blocks],
        intervals=[(iv.start, iv.end) for iv in work.intervals],
        pixels_per_block=shape[0] * shape[1],
        kept_after=masked.kept_after,
        subsampled=np.bincount(chosen.block_of, minlength=len(blocks)),
        notes=[b.missing for b in blocks],
        emptied_by=masked.emptied_by,
    )
    products = {s.stream: s.product for s in getattr(work.data, "streams", [])}
    for name, stream in zip(STREAM_NAMES, ("thickness", "velocity")):  # per-year, per-rule counts name their product
        if name in record.get("streams", {}):
            record["streams"][name]["product"] = products.get(stream, "prototype")
    return Availability(
        record=record,
        maps={name: counts.reshape(shape) for name, counts in masked.maps.items()},  # kept points per cell, per stream
    )


def _prepared(cfg: Config, work: _Work, masked: _Masked, chosen: _Chosen,
              values: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> Prepared:
    """The arrays with their stream labels: under `compat: prototype` positional at the old
    `n_dhdt` (defect 1), else each point's own; and the layout and the record of how they were made."""
    data, blocks = work.data, work.blocks
    y_point, sigma_point, speed_point, F = values
    block_of, n = chosen.block_of, int(chosen.positions.size)
    labels = np.where(_vel_blocks(blocks)[block_of], VEL, THICK).astype(np.int8)
    n_dhdt = int(np.count_nonzero(chosen.positions < chosen.n_dhdt_full))
    stream = positional_stream(n, n_dhdt) if cfg.compat == "prototype" else labels
    if cfg.compat == "fixed":
        n_dhdt = int(np.count_nonzero(stream == THICK))
    return Prepared(
        y_obs=y_point,
        sigma_obs=sigma_point,
        F=F,
        speed=speed_point,
        n_dhdt=n_dhdt,
        n_vel=n - n_dhdt,
        member_ids=data.member_ids,
        stream=stream,
        compat=cfg.compat,
        availability=_availability(work, masked, chosen),
        layout=PointLayout(
            pixel=chosen.pixel.astype(np.int64), block=block_of.astype(np.int64), grid_shape=tuple(data.grid.shape),
            cell_size=_cell_size(data.grid),
            keep_rate=np.bincount(block_of, minlength=len(blocks)) / np.maximum(masked.per_block, 1),
        ),
        meta={
            "n_total_before_subsample": chosen.n_total,
            "n_dhdt_full": chosen.n_dhdt_full,
            "n_vel_full": chosen.n_total - chosen.n_dhdt_full,
            "subsampled": chosen.subsampled,
            "interval_tmid": [iv.mid for iv in work.intervals],
            "member_files": [m.path.name for m in data.members],
            "mislabelled_points": int(np.count_nonzero(stream != labels)),
        },
    )
