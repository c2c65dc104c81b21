"""`likelihood.form: blocks`: observations and members averaged over squares at least one correlation length wide.

The field's practice for correlated residuals (Felikson et al. 2023): average onto blocks wide
enough that their means are nearly independent, keep the blocks that are mostly valid, and
score the block means. Per stream s with fitted e-folding length ℓ_s (cells), the squares are
b_s = ⌈ℓ_s⌉ cells on a side, aligned with the grid's first cell, one set per (stream,
interval) block of points (errors of different blocks are independent). A square is kept when
its kept points cover at least `min_valid` of its cells (cells inside the grid; the count is
divided by the subsample's keep rate of that (stream, interval) block, so a subsampled run
measures validity, not the subsample).

The block mean's error variance comes from the fitted covariance, not σ²/n: with ρᵢⱼ the
fitted correlation between two points of the square and σᵢ² = σ_obs,i² + inflation² +
σ_base²(1 + β·speed_i) the model's total variance,

    Var(ē_B) = (1/n²) ΣᵢΣⱼ σᵢσⱼρᵢⱼ  ≈  (1/n²) Σᵢ rᵢ σᵢ²,   rᵢ = Σⱼ ρᵢⱼ,

σᵢσⱼ taken as (σᵢ² + σⱼ²)/2: exact when σ is constant over the square, an upper bound
otherwise (ρ ≥ 0), and linear in σ², so the block form keeps the model's shape
var_B = C_B·(a_B + σ_base²(1 + β·v_B)) with C_B = Σrᵢ/n², a_B and v_B the r-weighted means of
σ_obs² + inflation² and speed. `block_prepared` returns the blocks as a `Prepared` whose
residuals are scaled by 1/√C_B: the PyMC model, the fused density (nutpie), Laplace and the
member log-likelihoods then run on it unchanged under the `independent` weights, their
log-density differing from the blocks' by the constant −½·M·Σ log C_B (no draw or weight
moves). `naive_sigma=True` is the planted defect σ_B² = mean σᵢ²/n (ρ ignored).

Points are scattered kept cells, not a full field, so the squares are formed by grouping the
points (a bincount over N·M values) rather than with `xarray.coarsen`, which would need each
member as a dense grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from fusion.data.prepared import THICK, VEL, PointLayout, Prepared


class StreamCorrelationLike(Protocol):
    """What the squares need of a stream's fitted correlation (`fusion.inference.likelihood.StreamCorrelation`)."""

    length_cells: float

    def correlation(self, distance_cells: np.ndarray) -> np.ndarray: ...

__all__ = ["BlockSummary", "block_prepared", "block_side"]

_PAIR_ELEMENTS = 1 << 16  # pairs of points formed at once (512 KiB of float64: they stay in cache)


@dataclass(frozen=True)
class BlockSummary:
    """One stream's squares: their side, how many were formed and kept, and the points they hold."""

    stream: int
    side_cells: int
    n_squares: int
    n_kept: int
    n_points_kept: int
    mean_points: float

    def record(self) -> dict[str, Any]:
        return {
            "block_side_cells": self.side_cells, "n_blocks": self.n_kept, "n_blocks_dropped": self.n_squares - self.n_kept,
            "n_points_in_blocks": self.n_points_kept, "mean_points_per_block": self.mean_points,
        }  # fmt: skip


def block_side(length_cells: float) -> int:
    """Side of the squares, in cells: at least one correlation length (and one cell)."""
    return max(1, math.ceil(length_cells - 1e-9))


def _row_sums(rows: np.ndarray, cols: np.ndarray, group: np.ndarray, n_groups: int, side: int, corr: Any) -> np.ndarray:
    """rᵢ = Σⱼ ρ(dᵢⱼ) over the points j of i's group (i = j included: ρ(0) = 1), groups being
    squares of `side` cells (integer `rows`, `cols`).

    Two points of one square are less than `side` cells apart on each axis, so ρ of every pair
    is an entry of one (side + 1)² table of ρ(hypot(|Δrow|, |Δcol|)), its last row and column 0:
    ρ is evaluated side² times, not once per pair. Groups are padded to the largest one with
    points `side` cells outside the grid, which fall in the zero row or column against every real
    point; each point's row of ρ is summed as one (NumPy's pairwise sum over all the group's
    slots). The rows are formed `_PAIR_ELEMENTS` pairs at a time, several small groups at once or
    a part of one large group's rows (the padding's own rows are never formed), the table's
    indices in int32 and in place: the same sums, bit for bit, in a third of the time.
    """
    offsets = np.arange(side + 1, dtype=np.float64)
    table = np.asarray(corr(np.hypot(offsets[:, None], offsets[None, :])), dtype=np.float64)
    table[side, :] = 0.0
    table[:, side] = 0.0
    flat = table.ravel()
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(group.size) - np.repeat(starts, counts)
    n_max = int(counts.max())
    pr = np.full((n_groups, n_max), -side, dtype=np.int32)
    pc = np.full((n_groups, n_max), -side, dtype=np.int32)
    pr[group[order], slot] = rows[order]
    pc[group[order], slot] = cols[order]
    sums = np.zeros((n_groups, n_max))
    if n_max * n_max <= _PAIR_ELEMENTS:  # whole groups, as many as fit
        step = _PAIR_ELEMENTS // (n_max * n_max)
        parts = [(slice(g, g + step), slice(None)) for g in range(0, n_groups, step)]
    else:  # one group, its real points' rows a part at a time
        step = max(1, _PAIR_ELEMENTS // n_max)
        parts = [(slice(g, g + 1), slice(i, min(i + step, int(counts[g]))))
                 for g in range(n_groups) for i in range(0, int(counts[g]), step)]  # fmt: skip
    for groups, own in parts:
        r, c = pr[groups], pc[groups]
        index = np.subtract(r[:, own, None], r[:, None, :])
        np.abs(index, out=index)
        np.minimum(index, side, out=index)
        index *= side + 1
        dc = np.subtract(c[:, own, None], c[:, None, :])
        np.abs(dc, out=dc)
        np.minimum(dc, side, out=dc)
        index += dc
        sums[groups, own] = flat.take(index).sum(axis=2)
    out = np.empty(group.size)
    out[order] = sums[group[order], slot]
    return out


def block_prepared(
    prepared: Prepared,
    correlations: Mapping[int, StreamCorrelationLike],
    min_valid: float = 0.75,
    *,
    inflation2: tuple[float, float] = (0.0, 25.0),
    naive_sigma: bool = False,
) -> tuple[Prepared, dict[int, BlockSummary]]:
    """The kept squares of every stream as a `Prepared` (thickness first), and a summary per stream.

    `inflation2` is the (thick, vel) variance the model adds to σ_obs² (`NoiseSettings.inflation2`):
    it enters the r-weighted a_B, and is taken back out of the returned σ_obs². Raises ValueError
    without a point layout, a correlation for a stream with points, or a kept square.
    """
    layout = prepared.layout
    if layout is None:
        raise ValueError("likelihood.form blocks: the prepared points carry no grid layout")
    parts: list[_StreamSquares] = []
    summaries: dict[int, BlockSummary] = {}
    for s in (THICK, VEL):
        sel = np.flatnonzero(prepared.stream == s)
        if sel.size == 0:
            continue
        if s not in correlations:
            raise ValueError(f"likelihood.form blocks: no correlation estimate for stream {s}")
        squares = _squares(layout, s, sel, correlations[s].length_cells, min_valid)
        summaries[s] = squares.summary
        if squares.n_kept:
            parts.append(_square_means(prepared, squares, correlations[s], inflation2[s], naive_sigma))
    if not parts:
        raise ValueError(f"likelihood.form blocks: no block is at least {min_valid:g} valid")
    return _joined(prepared, parts), summaries


@dataclass(frozen=True)
class _Squares:
    """One stream's points grouped into the kept squares: which points, their square (0..), where."""

    summary: BlockSummary
    points: np.ndarray  # indices into the prepared points
    group: np.ndarray  # each point's kept square, renumbered 0..n_kept-1
    n_points: np.ndarray  # points per kept square
    rows: np.ndarray  # grid row and column of each point
    cols: np.ndarray

    @property
    def n_kept(self) -> int:
        return int(self.n_points.size)


def _squares(layout: PointLayout, s: int, sel: np.ndarray, length_cells: float, min_valid: float) -> _Squares:
    """Group stream `s`'s points (`sel`) into squares per (stream, interval) block and keep those whose
    points cover `min_valid` of their cells inside the grid (counted back through the keep rate)."""
    ny, nx = layout.grid_shape
    rate_of = np.ones(int(layout.block.max()) + 1) if layout.keep_rate is None else np.asarray(layout.keep_rate)
    side = block_side(length_cells)
    rows, cols = np.divmod(layout.pixel[sel], nx)
    keys = np.stack([layout.block[sel], rows // side, cols // side], axis=1).astype(np.int64)
    # one integer per (block, square row, square column), in the same lexicographic order as
    # `np.unique(keys, axis=0)` (every part ≥ 0), which sorts rows as records and is 5× slower
    span = keys.max(axis=0) + 1
    code, group = np.unique((keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2], return_inverse=True)
    uniq = np.stack([code // (span[1] * span[2]), code // span[2] % span[1], code % span[2]], axis=1)
    group = group.ravel()
    n = np.bincount(group, minlength=uniq.shape[0]).astype(np.float64)
    cells = np.minimum(side, ny - uniq[:, 1] * side) * np.minimum(side, nx - uniq[:, 2] * side)
    valid = n / (cells * rate_of[uniq[:, 0]])
    keep = valid >= min_valid - 1e-12
    summary = BlockSummary(
        stream=s, side_cells=side, n_squares=int(uniq.shape[0]), n_kept=int(keep.sum()),
        n_points_kept=int(n[keep].sum()), mean_points=float(n[keep].mean()) if keep.any() else 0.0,
    )  # fmt: skip
    inside = keep[group]
    grp = np.cumsum(keep)[group[inside]] - 1  # renumber the kept squares 0..
    return _Squares(summary, sel[inside], grp, n[keep], rows[inside], cols[inside])


@dataclass(frozen=True)
class _StreamSquares:
    """One stream's kept squares in `Prepared`'s terms: residual-scaled means, σ_obs, speed, label."""

    y: np.ndarray
    F: np.ndarray
    sigma_obs: np.ndarray
    speed: np.ndarray
    stream: np.ndarray


def _square_means(prepared: Prepared, squares: _Squares, corr: StreamCorrelationLike, inflation2: float,
                  naive_sigma: bool) -> _StreamSquares:
    """The means over each kept square (module docstring): y and F scaled by 1/√C_B, the r-weighted
    σ_obs² + inflation² (inflation taken back out) and speed; r = 1 for the planted naive σ."""
    pts, grp, n_kept, g = squares.points, squares.group, squares.n_points, squares.n_kept
    if naive_sigma:
        r = np.ones(pts.size)
    else:
        r = _row_sums(squares.rows, squares.cols, grp, g, squares.summary.side_cells, corr.correlation)
    sum_r = np.bincount(grp, weights=r, minlength=g)
    scale = sum_r / (n_kept * n_kept)  # C_B: Var(block mean) per unit σ²
    a = np.square(prepared.sigma_obs[pts]).astype(np.float64) + inflation2
    a_b = np.bincount(grp, weights=r * a, minlength=g) / sum_r
    v_b = np.bincount(grp, weights=r * prepared.speed[pts], minlength=g) / sum_r
    y_b = np.bincount(grp, weights=prepared.y_obs[pts].astype(np.float64), minlength=g) / n_kept
    f_b = np.stack([np.bincount(grp, weights=row, minlength=g) for row in prepared.F[:, pts]]) / n_kept
    root = np.sqrt(scale)
    return _StreamSquares(
        y=y_b / root, F=f_b / root, sigma_obs=np.sqrt(np.maximum(a_b - inflation2, 0.0)), speed=v_b,
        stream=np.full(g, squares.summary.stream, dtype=np.int8),
    )


def _joined(prepared: Prepared, parts: list[_StreamSquares]) -> Prepared:
    """The streams' squares as one `Prepared`, thickness first, with no grid layout."""
    stream = np.concatenate([p.stream for p in parts])
    n_thick = int(np.count_nonzero(stream == THICK))
    return replace(
        prepared,
        y_obs=np.concatenate([p.y for p in parts]).astype(np.float32),
        sigma_obs=np.concatenate([p.sigma_obs for p in parts]).astype(np.float32),
        F=np.concatenate([p.F for p in parts], axis=1),
        speed=np.concatenate([p.speed for p in parts]),
        n_dhdt=n_thick,
        n_vel=int(stream.size - n_thick),
        stream=stream,
        layout=None,
    )
