"""`likelihood.form: blocks` (fusion/inference/blocks.py): squares of at least one correlation length,
kept when mostly valid, each block's variance from the fitted covariance (not σ²/n), and the form
running through `fusion run` under both methods."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusion.data.prepared import THICK, VEL, PointLayout
from fusion.inference.blocks import block_prepared, block_side
from fusion.inference.likelihood import StreamCorrelation, form_inputs
from fusion.inference.fused_density import FusedDensity
from fusion.inference.noise import NoiseSettings
from fusion.inference.pymc_model import build_model
from tests.fusion.inference._factories import make_prepared

GRID = (12, 20)
INFLATION2 = (0.0, 25.0)


def _case(seed: int = 0, fill: float = 1.0):
    """Points on every cell of GRID for each stream (one (stream, interval) block each), then
    `fill` of them kept at random; exponential ℓ = 3 cells, a nugget."""
    n_cells = GRID[0] * GRID[1]
    base = make_prepared(2 * n_cells, 3, seed=seed)
    stream = np.r_[np.full(n_cells, THICK), np.full(n_cells, VEL)].astype(np.int8)
    pixel = np.r_[np.arange(n_cells), np.arange(n_cells)]
    speed = np.where(stream == VEL, np.abs(base.speed) + 10.0, 0.0)
    prepared = replace(
        base, stream=stream, speed=speed, n_dhdt=n_cells, n_vel=n_cells,
        layout=PointLayout(pixel=pixel, block=stream.astype(np.int64), grid_shape=GRID),
    )  # fmt: skip
    keep = np.random.default_rng(seed).random(2 * n_cells) < fill
    idx = np.flatnonzero(keep)
    prepared = replace(
        prepared, y_obs=prepared.y_obs[idx], sigma_obs=prepared.sigma_obs[idx], F=prepared.F[:, idx],
        speed=prepared.speed[idx], stream=prepared.stream[idx],
        n_dhdt=int((prepared.stream[idx] == THICK).sum()), n_vel=int((prepared.stream[idx] == VEL).sum()),
        layout=PointLayout(pixel=pixel[idx], block=prepared.layout.block[idx], grid_shape=GRID),
    )  # fmt: skip
    corr = {
        s: StreamCorrelation(
            stream=s, n_points=int((prepared.stream == s).sum()), length_cells=3.0, length=None, model="exponential",
            source="config", n_eff_scale=1.0, n_eff_location=1.0, sill=1.0, nugget=0.2,
        )  # fmt: skip
        for s in (THICK, VEL)
    }
    return prepared, corr


def _squares(prepared, side: int):
    """Brute force: {(stream, square row, square col): point indices}."""
    rows, cols = np.divmod(prepared.layout.pixel, GRID[1])
    out: dict[tuple[int, int, int], list[int]] = {}
    for i in range(prepared.n_points):
        out.setdefault((int(prepared.stream[i]), int(rows[i] // side), int(cols[i] // side)), []).append(i)
    return out


@pytest.mark.parametrize("theta", [(0.4, 2.0, 0.0, 0.01), (1.5, 0.3, 0.0, 0.2)])
def test_block_variance_is_the_fitted_covariance_of_the_block_mean(theta) -> None:
    """Per square: Var(mean) = (1/n²)Σᵢ rᵢσᵢ², rᵢ = Σⱼρᵢⱼ; equal to (1/n²)ΣΣσᵢσⱼρᵢⱼ where σ is
    constant over the square and above it otherwise; far above σ²/n (the planted defect's value)."""
    prepared, corr = _case()
    blocks, summary = block_prepared(prepared, corr, 0.75, inflation2=INFLATION2)
    side = block_side(3.0)
    assert side == 3 and summary[THICK].side_cells == 3
    squares = _squares(prepared, side)
    rows, cols = np.divmod(prepared.layout.pixel, GRID[1])
    sb = {THICK: theta[0], VEL: theta[1]}
    beta = {THICK: theta[2], VEL: theta[3]}
    k = 0
    for s in (THICK, VEL):
        for key in sorted(q for q in squares if q[0] == s):
            idx = np.array(squares[key])
            sig2 = prepared.sigma_obs[idx].astype(np.float64) ** 2 + INFLATION2[s] + sb[s] ** 2 * (1 + beta[s] * prepared.speed[idx])
            d = np.hypot(rows[idx, None] - rows[None, idx], cols[idx, None] - cols[None, idx])
            rho = corr[s].correlation(d)
            n = idx.size
            exact = np.sqrt(sig2) @ rho @ np.sqrt(sig2) / n**2
            linear = rho.sum(axis=1) @ sig2 / n**2
            # the block point's variance: C_B·(σ_obs'² + inflation² + σ_base²(1 + β v'))
            f_mean = prepared.F[:, idx].mean(axis=1)
            c_b = (f_mean[0] / blocks.F[0, k]) ** 2
            implied = c_b * (float(blocks.sigma_obs[k]) ** 2 + INFLATION2[s] + sb[s] ** 2 * (1 + beta[s] * blocks.speed[k]))
            assert implied == pytest.approx(linear, rel=1e-5)
            assert linear >= exact * (1 - 1e-12)
            if n > 1:
                assert linear > 1.5 * sig2.mean() / n  # correlation: far more than σ²/n
            np.testing.assert_allclose(blocks.y_obs[k] * np.sqrt(c_b), prepared.y_obs[idx].astype(np.float64).mean(), rtol=1e-6)
            k += 1
    assert k == blocks.n_points == summary[THICK].n_kept + summary[VEL].n_kept
    # equal σ over a square: the linear form is the exact variance of the mean
    flat = replace(prepared, sigma_obs=np.full_like(prepared.sigma_obs, 1.3), speed=np.zeros_like(prepared.speed))
    fb, _ = block_prepared(flat, corr, 0.75, inflation2=(0.0, 0.0))
    idx = np.array(squares[(THICK, 0, 0)])
    d = np.hypot(rows[idx, None] - rows[None, idx], cols[idx, None] - cols[None, idx])
    exact = 1.3**2 * corr[THICK].correlation(d).sum() / idx.size**2
    c_b = (flat.F[0, idx].mean() / fb.F[0, 0]) ** 2
    assert c_b * float(fb.sigma_obs[0]) ** 2 == pytest.approx(exact, rel=1e-6)


def test_naive_sigma_is_sigma_over_root_n() -> None:
    prepared, corr = _case(1)
    blocks, _ = block_prepared(prepared, corr, 0.75, inflation2=INFLATION2, naive_sigma=True)
    idx = np.array(_squares(prepared, 3)[(THICK, 0, 0)])
    c_b = (prepared.F[0, idx].mean() / blocks.F[0, 0]) ** 2
    assert c_b == pytest.approx(1.0 / idx.size, rel=1e-9)
    assert float(blocks.sigma_obs[0]) ** 2 == pytest.approx(np.mean(prepared.sigma_obs[idx].astype(np.float64) ** 2), rel=1e-6)


def test_squares_below_the_valid_fraction_are_dropped_and_the_keep_rate_counts() -> None:
    prepared, corr = _case(2, fill=0.6)
    squares = _squares(prepared, 3)
    cells = {q: min(3, GRID[0] - 3 * q[1]) * min(3, GRID[1] - 3 * q[2]) for q in squares}
    expect = sum(len(v) / cells[q] >= 0.5 for q, v in squares.items())
    blocks, summary = block_prepared(prepared, corr, 0.5)
    assert blocks.n_points == expect == summary[THICK].n_kept + summary[VEL].n_kept
    assert summary[THICK].n_squares + summary[VEL].n_squares == len(squares) > expect
    # the same points as a 60 % subsample of a fully valid grid: every square counts as valid
    rated = replace(prepared, layout=replace(prepared.layout, keep_rate=np.array([0.6, 0.6])))
    dense, _ = block_prepared(rated, corr, 0.5)
    assert dense.n_points > blocks.n_points
    with pytest.raises(ValueError, match="no block is at least"):
        block_prepared(prepared, corr, 1.0 + 1e-9)


def test_blocks_samples_the_same_density_in_pymc_and_the_fused_kernel() -> None:
    prepared, corr = _case(3)
    settings, points, summary = form_inputs(NoiseSettings(), "blocks", prepared, corr)
    assert summary is not None and points.n_points < prepared.n_points
    assert settings.density_scale == (1.0, 1.0) == settings.member_scale
    model = build_model(points, settings)
    logp, dlogp = model.compile_logp(mode="FAST_COMPILE"), model.compile_dlogp(mode="FAST_COMPILE")
    fused = FusedDensity(points, settings)
    for x in np.random.default_rng(4).normal(-1.0, 1.0, (3, 4)):
        point = {v.name: x[i] for i, v in enumerate(model.value_vars)}
        value, grad = fused.logp_grad(x)
        np.testing.assert_allclose(value, logp(point), rtol=1e-9)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-9)


@pytest.mark.parametrize("method", ["laplace", "nuts"])
def test_fusion_run_with_blocks(tmp_path: Path, method: str) -> None:
    """`likelihood.form: blocks` through the pipeline: summary.json says so, with the squares per stream."""
    from fusion.config import load_config
    from fusion.data.synthetic import write_example
    from fusion.pipeline import run_to_dir

    config = write_example(tmp_path / "example")
    text = config.read_text().replace("draws: 1000", "draws: 60").replace("tune: 1000", "tune: 60").replace("chains: 4", "chains: 2")
    text = text.replace("sampler: nutpie", f"sampler: nutpie\n  method: {method}")
    config.write_text(text.replace("output:", "likelihood: {form: blocks, block_min_valid: 0.5}\noutput:"))
    with pytest.warns():  # the example's missing velocity error variable (and perhaps convergence)
        out = run_to_dir(load_config(config), tmp_path / "out", progressbar=False)
    summary = json.loads((out / "summary.json").read_text())
    lik = summary["likelihood"]
    assert lik["form"] == "blocks" and lik["density_scale"] == {"thick": 1.0, "vel": 1.0}
    for name in ("thick", "vel"):
        s = lik["streams"][name]
        assert s["block_side_cells"] == block_side(s["correlation_length_cells"])
        assert 0 < s["n_blocks"] and s["n_points_in_blocks"] <= s["n_points"]
    weights = summary["sensitivity"]["forms"]["blocks"]["weights"]
    assert sum(weights.values()) == pytest.approx(1.0)
    assert (out / "_SUCCESS").exists()


@pytest.mark.parametrize("side", [1, 2, 3, 5])
def test_row_sums_by_offset_table_equal_every_pair_summed(side: int) -> None:
    """rᵢ from the (side + 1)² table of ρ by |Δrow|, |Δcol| equals Σⱼ ρ(dᵢⱼ) pair by pair, for squares
    of uneven fill (the padding adds nothing) and cells whose points sit in two groups."""
    from fusion.inference.blocks import _row_sums

    rng = np.random.default_rng(side)
    rows, cols = np.divmod(np.flatnonzero(rng.random(GRID[0] * GRID[1]) < 0.6), GRID[1])
    group_key = np.stack([rows // side, cols // side], axis=1)
    _, group = np.unique(group_key, axis=0, return_inverse=True)
    group = group.ravel()
    again = np.flatnonzero(group == 0)  # the first square's points once more, as another interval's group
    rows, cols, group = np.r_[rows, rows[again]], np.r_[cols, cols[again]], np.r_[group, np.full(again.size, group.max() + 1)]
    corr = StreamCorrelation(
        stream=THICK, n_points=rows.size, length_cells=2.0, length=None, model="exponential", source="config",
        n_eff_scale=1.0, n_eff_location=1.0, sill=1.0, nugget=0.3,
    )  # fmt: skip
    got = _row_sums(rows, cols, group, int(group.max()) + 1, side, corr.correlation)
    want = np.empty(rows.size)
    for i in range(rows.size):
        same = np.flatnonzero(group == group[i])
        want[i] = corr.correlation(np.hypot(rows[i] - rows[same], cols[i] - cols[same])).sum()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.all(got >= 1.0)


@pytest.mark.parametrize("pairs", [1 << 16, 300, 1])
@pytest.mark.parametrize("side", [4, 20])
def test_row_sums_formed_in_parts_are_the_whole_rows_bits(monkeypatch, pairs: int, side: int) -> None:
    """However the pairs are split (several squares at once, a part of one square's rows, one row),
    each rᵢ is the bits of its whole padded row summed at once, as when every square's pairs
    were formed together; side 20 makes one square of the whole grid (140-odd points, more pairs
    than the smaller budgets)."""
    from fusion.inference import blocks

    rng = np.random.default_rng(side + pairs)
    rows, cols = np.divmod(np.flatnonzero(rng.random(GRID[0] * GRID[1]) < 0.6), GRID[1])
    _, group = np.unique(np.stack([rows // side, cols // side], axis=1), axis=0, return_inverse=True)
    group = group.ravel()
    corr = StreamCorrelation(
        stream=THICK, n_points=rows.size, length_cells=3.0, length=None, model="exponential", source="config",
        n_eff_scale=1.0, n_eff_location=1.0, sill=1.0, nugget=0.2,
    )  # fmt: skip
    monkeypatch.setattr(blocks, "_PAIR_ELEMENTS", pairs)
    got = blocks._row_sums(rows, cols, group, int(group.max()) + 1, side, corr.correlation)
    # every square's pairs at once: rows padded to the largest square with points `side` outside
    offsets = np.arange(side + 1, dtype=np.float64)
    table = corr.correlation(np.hypot(offsets[:, None], offsets[None, :]))
    table[side, :] = table[:, side] = 0.0
    counts = np.bincount(group)
    pr = np.full((counts.size, counts.max()), -side)
    pc = pr.copy()
    slot = np.zeros(rows.size, dtype=np.int64)
    for g in range(counts.size):
        own = np.flatnonzero(group == g)
        pr[g, : own.size], pc[g, : own.size], slot[own] = rows[own], cols[own], np.arange(own.size)
    dr = np.minimum(np.abs(pr[:, :, None] - pr[:, None, :]), side)
    dc = np.minimum(np.abs(pc[:, :, None] - pc[:, None, :]), side)
    want = table.ravel()[dr * (side + 1) + dc].sum(axis=2)[group, slot]
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("side", [1, 3, 7])
def test_squares_are_numbered_in_the_order_of_their_block_row_and_column(side: int) -> None:
    """`_squares` numbers the squares as `np.unique` over (block, square row, square column)
    records does: one integer key per square gives the same order and the same groups."""
    from fusion.inference.blocks import _squares

    rng = np.random.default_rng(side)
    n = 400
    pixel = rng.integers(0, GRID[0] * GRID[1], n)
    layout = PointLayout(pixel=pixel, block=rng.integers(0, 5, n), grid_shape=GRID)
    sel = np.arange(n)
    got = _squares(layout, THICK, sel, float(side), min_valid=0.0)
    rows, cols = np.divmod(pixel, GRID[1])
    uniq, group = np.unique(np.stack([layout.block, rows // side, cols // side], axis=1), axis=0, return_inverse=True)
    assert got.summary.n_squares == uniq.shape[0] == got.summary.n_kept
    assert np.array_equal(got.group, group.ravel()) and np.array_equal(got.points, sel)
    assert np.array_equal(got.n_points, np.bincount(group.ravel()))
