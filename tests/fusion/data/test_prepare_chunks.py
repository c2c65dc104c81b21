"""`prepare(..., chunk_rows=N)`: streamed by blocks of grid rows, the same bits as in memory."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fusion.config import load_config
from fusion.data.load import load_data
from fusion.data.prepare import prepare, row_chunks
from fusion.errors import DataWarning
from fusion.data.synthetic import SyntheticSpec, generate, write_example
from tests.helpers import REFERENCE_CASES, reference_inputs

ARRAYS = ("y_obs", "sigma_obs", "F", "speed", "stream")


def _same_bits(a, b) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
    assert (a.n_dhdt, a.n_vel, a.member_ids) == (b.n_dhdt, b.n_vel, b.member_ids)
    assert a.availability.record == b.availability.record
    for stream, counts in a.availability.maps.items():
        assert counts.tobytes() == b.availability.maps[stream].tobytes(), stream


def test_row_chunks_cover_every_row_once() -> None:
    assert row_chunks(10, None) == [slice(None)]
    assert row_chunks(10, 10) == [slice(None)]
    assert [(s.start, s.stop) for s in row_chunks(10, 4)] == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("case", REFERENCE_CASES)
@pytest.mark.parametrize("compat", ["prototype", "fixed"])
@pytest.mark.parametrize("chunk_rows", [1, 7])
def test_chunked_prepare_is_the_in_memory_bits(case: str, compat: str, chunk_rows: int) -> None:
    cfg = load_config(reference_inputs(case).parent / "config.yaml").with_updates(compat=compat)
    data = load_data(cfg)
    _same_bits(prepare(cfg, data), prepare(cfg, data, chunk_rows=chunk_rows))


@pytest.mark.parametrize("compat", ["prototype", "fixed"])
def test_chunked_prepare_keeps_awkward_inputs_bits(tmp_path: Path, compat: str) -> None:
    """Gaps, an all-fill rmse year (median fill), a missing ERRY, member NaNs, a subsample: every
    global rule (fill median, emptied-by member, count-then-choose) survives chunking."""
    spec = SyntheticSpec(ny=23, nx=17, members=4, years=(2015, 2021), seed=3, elev_gap_years=(2017,),
                         elev_no_rmse_years=(2018,), vel_missing_err_years=(2019,))
    generate(tmp_path / "ex", spec)  # the example's config, on this spec's files
    config = tmp_path / "ex" / "config.yaml"
    config.write_text(write_example(tmp_path / "example").read_text())
    cfg = load_config(config).with_updates(compat=compat, inference={"subsample": {"size": 500, "seed": 5}})
    if compat == "fixed":
        with pytest.warns(DataWarning, match="missing error variable 'ERRY'"):
            data = load_data(cfg)
    else:
        data = load_data(cfg)
    whole = prepare(cfg, data)
    assert whole.meta["subsampled"]
    for chunk_rows in (1, 5, 22):
        _same_bits(whole, prepare(cfg, data, chunk_rows=chunk_rows))


def test_lazy_observations_give_the_same_bits(tmp_path: Path) -> None:
    """`load_data(lazy=True)` leaves observation fields in their files (read by rows); chunked on them is the same."""
    cfg = load_config(reference_inputs("small").parent / "config.yaml")
    _same_bits(prepare(cfg, load_data(cfg)), prepare(cfg, load_data(cfg, lazy=True), chunk_rows=6))


@pytest.mark.full
@pytest.mark.parametrize("compat", ["prototype", "fixed"])
def test_chunked_prepare_is_the_in_memory_bits_at_size(tmp_path: Path, compat: str) -> None:
    """The same on a 761 × 761 grid (the 8 km size), 5 members, blocks of 100 rows on lazy observations."""
    spec = SyntheticSpec(ny=761, nx=761, members=5, years=(2015, 2021), seed=11)
    generate(tmp_path / "ex", spec)
    config = tmp_path / "ex" / "config.yaml"
    config.write_text(write_example(tmp_path / "example").read_text())
    cfg = load_config(config).with_updates(compat=compat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        whole = prepare(cfg, load_data(cfg))
        chunked = prepare(cfg, load_data(cfg, lazy=True), chunk_rows=100)
    _same_bits(whole, chunked)


def test_cli_chunk_rows_writes_the_same_arrays(tmp_path: Path) -> None:
    from fusion.cli import main

    config = reference_inputs("subsample").parent / "config.yaml"
    whole, chunked = tmp_path / "whole.npz", tmp_path / "chunked.npz"
    assert main(["prepare", str(config), "--out", str(whole)]) == 0
    assert main(["prepare", str(config), "--out", str(chunked), "--chunk-rows", "9"]) == 0
    with np.load(whole) as a, np.load(chunked) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_blocks_show_a_bar_on_a_terminal_only_when_asked(monkeypatch: pytest.MonkeyPatch, progress: bool) -> None:
    cfg = load_config(reference_inputs("small").parent / "config.yaml")
    data = load_data(cfg, lazy=True)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    prepare(cfg, data, chunk_rows=6, progress=progress)
    assert ("prepare: blocks of rows" in terminal.getvalue()) is progress
