"""SLE per member from `totig` files, label alignment, exact weighted quantiles, summary and plot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fusion.config import Config
from fusion.errors import InputError
from fusion.figures.projection import plot_projection
from fusion.projection import (
    member_sle,
    project,
    projection_summary,
    sle_mm,
    weighted_quantile,
)
from tests.helpers import projection_dataset, write_nc

FACTOR = 917.0 / 1028.0 / 3.62e14 * 1000.0  # mm per m³ of ice lost


def _config(root: Path, **projection) -> Config:
    return Config.model_validate(
        {
            "observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}},
            "ensemble": {"dir": "."},
            "projection": {
                "historical_dir": str(root / "hist"),
                "forward_dir": str(root / "fwd"),
                **projection,
            },
        }
    )


def _volume_file(path: Path, times: np.ndarray, volume: np.ndarray, time_attrs: dict | None = None) -> Path:
    return write_nc(path, {
        "time": (("time",), np.asarray(times, dtype=np.float64), dict(time_attrs or {})),
        "totig": (("time",), np.asarray(volume, dtype=np.float64), {"units": "m3"}),
    })  # fmt: skip


def _days_since_2000(year: int) -> float:
    return float((dt.datetime(year, 1, 1) - dt.datetime(2000, 1, 1)).days)


@pytest.fixture
def three_members(tmp_path: Path) -> dict[str, float]:
    """run1: decimal years; run2: CF days with a fill row; run10: PSU day-00 seconds. Returns true SLE."""
    v0 = 2.6e16
    expected = {}
    # run1: historical ends 2015 at v0 - 1e13; forward decimal years, 2100 has v0 - 5e14
    _volume_file(tmp_path / "hist/run01.nc", [2000.0, 2010.0, 2015.0], [v0, v0 - 5e12, v0 - 1e13])
    fwd_t = np.arange(2015.0, 2101.0)
    _volume_file(tmp_path / "fwd/run01.nc", fwd_t, v0 - 1e13 - (fwd_t - 2015.0) * 5.75e12)
    expected["run1"] = FACTOR * (85 * 5.75e12)
    # run2: forward in CF days with an extra fill-valued time row; 2100 sits on Jan 1
    years = [2015, 2050, 2100, 2120]
    t = [_days_since_2000(y) for y in years]
    _volume_file(tmp_path / "hist/run02.nc", [1990.0, 2015.0], [v0, v0 + 2e12])
    _volume_file(
        tmp_path / "fwd/run02.nc",
        [t[0], 9.969209968386869e36, t[1], t[2], t[3]],
        [v0, 0.0, v0 - 1e14, v0 - 3e14, v0 - 9e14],
        {"units": "days since 2000-01-01 00:00:00", "_FillValue": 9.969209968386869e36},
    )
    expected["run2"] = FACTOR * (2e12 + 3e14)
    # run10: PSU-style seconds since a day-00 origin; values unsorted in time on disk
    origin = dt.datetime(1999, 12, 31)
    secs = [(dt.datetime(y, 6, 1) - origin).total_seconds() for y in (2099, 2100, 2098)]  # ≈ y + 0.41
    _volume_file(tmp_path / "hist/run10.nc", [2014.0, 2015.0], [v0, v0 - 4e12])
    _volume_file(tmp_path / "fwd/run10.nc", secs, [v0 - 2e14, v0 - 2.5e14, v0 - 1.5e14],
                 {"units": "seconds since 2000-01-00 00:00:00"})
    expected["run10"] = FACTOR * (-4e12 + 2.5e14)
    (tmp_path / "fwd/notes.nc").write_text("no number, not a member file")
    return expected


def test_sle_formula() -> None:
    assert float(sle_mm(3.62e14, 0.0)) == pytest.approx(917.0 / 1028.0 * 1000.0, rel=1e-15)
    assert float(sle_mm(1.0, 2.0)) < 0  # ice gained lowers sea level


def test_member_sle_reads_each_time_encoding(tmp_path: Path, three_members: dict[str, float]) -> None:
    sle = member_sle(_config(tmp_path), ["run10", "run1", "run2"])
    assert list(sle["member"].values) == ["run10", "run1", "run2"]
    for m, value in three_members.items():
        assert float(sle.sel(member=m)) == pytest.approx(value, rel=1e-12), m
    assert sle.attrs["units"] == "mm"


def test_missing_member_file_names_member_and_key(tmp_path: Path, three_members) -> None:
    with pytest.raises(InputError, match=r"run7.*projection\.historical_dir"):
        member_sle(_config(tmp_path), ["run1", "run7"])
    with pytest.raises(InputError, match="folder not found"):
        member_sle(_config(tmp_path, forward_dir=str(tmp_path / "nowhere")), ["run1"])


def test_target_year_outside_forward_run_is_an_error(tmp_path: Path, three_members) -> None:
    with pytest.raises(InputError, match=r"run01\.nc.*target_year 2200"):
        member_sle(_config(tmp_path, target_year=2200), ["run1"])


def test_unknown_time_units_are_an_error(tmp_path: Path, three_members) -> None:
    _volume_file(tmp_path / "fwd/run01.nc", [1.0, 2.0], [1.0, 2.0], {"units": "fortnights since 2000-01-01"})
    with pytest.raises(InputError, match=r"run01\.nc.*fortnights"):
        member_sle(_config(tmp_path), ["run1"])


def _fake_trace(w: np.ndarray, members: list[str]) -> xr.DataTree:
    post = xr.Dataset({"w": (("chain", "draw", "member"), w)}, coords={"member": members})
    return xr.DataTree.from_dict({"posterior": post})


def test_project_aligns_weights_by_member_label(tmp_path: Path, three_members: dict[str, float]) -> None:
    rng = np.random.default_rng(0)
    raw = rng.dirichlet([1.0, 2.0, 3.0], size=(2, 30))
    trace = _fake_trace(raw, ["run2", "run10", "run1"])  # posterior order differs from the requested one
    proj = project(_config(tmp_path), trace, ["run1", "run2", "run10"])
    assert list(proj["member"].values) == ["run1", "run2", "run10"]
    sle = np.array([three_members[m] for m in ("run2", "run10", "run1")])
    np.testing.assert_allclose(proj["weighted_mean"].values, (raw * sle).sum(axis=-1), rtol=1e-13)
    np.testing.assert_allclose(proj["weight"].sel(member="run2"), raw[..., 0].mean(), rtol=1e-13)
    with pytest.raises(ValueError, match="do not match"):
        project(_config(tmp_path), trace, ["run1", "run2"])


def test_project_with_sle_already_read_reads_no_file_and_agrees(
    tmp_path: Path, three_members: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fusion run` reads the volume files once, before sampling, and hands the SLE to `project`."""
    cfg = _config(tmp_path)
    trace = _fake_trace(np.random.default_rng(1).dirichlet([1.0, 1.0, 1.0], size=(2, 10)), ["run1", "run2", "run10"])
    sle = member_sle(cfg, ["run10", "run2", "run1"])  # another order: `project` aligns by label
    expected = project(cfg, trace, ["run1", "run2", "run10"])

    def no_reading(*_: object) -> None:
        raise AssertionError("a volume file was read again")

    monkeypatch.setattr("fusion.projection.read_volume", no_reading)
    given = project(cfg, trace, ["run1", "run2", "run10"], sle=sle)
    xr.testing.assert_identical(given, expected)


def test_weighted_quantile_is_the_inverse_weighted_ecdf() -> None:
    values = np.array([30.0, 10.0, 20.0, 40.0])
    weights = np.array([0.1, 0.2, 0.3, 0.4])  # sorted: 10 (0.2), 20 (0.3), 30 (0.1), 40 (0.4)
    got = weighted_quantile(values, weights, [0.0, 0.2, 0.2000001, 0.5, 0.55, 0.6, 0.61, 1.0])
    np.testing.assert_array_equal(got, [10.0, 10.0, 20.0, 20.0, 30.0, 30.0, 40.0, 40.0])
    # a q exactly on a step is not pushed up by rounding of the cumulative sum (0.1 × 10)
    assert weighted_quantile(np.arange(10.0), np.full(10, 0.1), 0.5)[0] == 4.0
    assert weighted_quantile(np.arange(10.0), np.full(10, 0.1), 0.3)[0] == 2.0
    # equal weights agree with repeating each member (the prototype's construction, done exactly)
    rng = np.random.default_rng(1)
    x = rng.normal(size=7)
    for q in (0.05, 0.5, 0.95):
        assert weighted_quantile(x, np.ones(7), q)[0] == np.sort(x)[int(np.ceil(q * 7)) - 1]
    with pytest.raises(ValueError):
        weighted_quantile(values, -weights, 0.5)


def test_summary_figures() -> None:
    sle, w = [50.0, 10.0, 30.0, 20.0], [0.1, 0.5, 0.3, 0.1]
    wm = np.linspace(20.0, 30.0, 101).reshape(1, 101)
    s = projection_summary(projection_dataset(sle, w, wm))
    mean = float(np.dot(sle, w))
    assert s["mean"] == pytest.approx(mean)
    assert s["sd"] == pytest.approx(np.sqrt(np.dot(w, (np.array(sle) - mean) ** 2)))
    # cumulative weight by SLE: 10 → .5, 20 → .6, 30 → .9, 50 → 1
    assert (s["lower"], s["median"], s["upper"]) == (10.0, 10.0, 50.0)
    assert s["units"] == "mm" and (s["lower_q"], s["upper_q"]) == (0.05, 0.95)
    assert s["weighted_mean"] == pytest.approx({"median": 25.0, "lower": 20.5, "upper": 29.5})
    assert s["unweighted"]["mean"] == pytest.approx(27.5)
    narrow = projection_summary(projection_dataset(sle, w, wm), lower_q=0.55, upper_q=0.85)
    assert (narrow["lower"], narrow["upper"]) == (20.0, 30.0)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    proj = projection_dataset([50.0, 10.0, 30.0], [0.2, 0.5, 0.3], np.random.default_rng(0).normal(25, 2, (2, 40)))
    fig = plot_projection(proj, path=tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
