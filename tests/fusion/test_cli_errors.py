"""Bad input: exit status 2, one line on stderr naming the file and the problem, nothing written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fusion.cli import main
from tests.helpers import TinyCase, write_nc


def _break_missing_folder(c: TinyCase) -> str:
    import shutil

    shutil.rmtree(c.root / "obs/vel")
    return "obs/vel: folder not found"


def _break_no_match(c: TinyCase) -> str:
    for f in (c.root / "ensemble").glob("*.nc"):
        f.rename(f.with_suffix(".bak"))
    return "no files match the pattern '*_regridded.nc'"


def _break_missing_variable(c: TinyCase) -> str:
    g = np.ones((3, c.ny, c.nx))
    write_nc(c.root / "ensemble/run02_regridded.nc", {**c.coords(), "time": (("time",), np.arange(3.0) + 2015, {}),
                                                       "h": (("time", "y", "x"), g.astype(np.float32), {}),
                                                       "ua": (("time", "y", "x"), g.astype(np.float32), {})})
    return "run02_regridded.nc: missing variable 'va'"


def _break_one_d_field(c: TinyCase) -> str:
    write_nc(c.root / "obs/elev/elev_antarctica_elevation_2016.nc",
             {"x": (("x",), c.x, {}), "height": (("x",), np.ones(c.nx, np.float32), {})})
    return "elev_antarctica_elevation_2016.nc: variable 'height' is 1-D"


def _break_corrupt(c: TinyCase) -> str:
    (c.root / "obs/vel/vel_Antarctica_ice_velocity_2016.nc").write_bytes(b"CDF\x01 this is not netcdf")
    return "vel_Antarctica_ice_velocity_2016.nc: not a readable NetCDF file"


def _break_all_nan(c: TinyCase) -> str:
    nan = np.full((c.ny, c.nx), np.nan)
    c.thickness(2016, nan, nan)
    return "elev_antarctica_elevation_2016.nc: variable 'height' is all NaN"


def _break_one_member(c: TinyCase) -> str:
    (c.root / "ensemble/run02_regridded.nc").unlink()
    return "only 1 member"


def _break_duplicate_ids(c: TinyCase) -> str:
    (c.root / "ensemble/run02_regridded.nc").rename(c.root / "ensemble/run1_regridded.nc")
    return "duplicate member id run1"


def _break_grid(c: TinyCase) -> str:
    other = TinyCase(c.root)
    other.x = c.x + 500.0
    g = np.ones((3, c.ny, c.nx))
    other.member(2, np.arange(3.0) + 2015, g, g, g)
    return "run02_regridded.nc: grid mismatch (coordinate values)"


def _break_grid_shape(c: TinyCase) -> str:
    other = TinyCase(c.root)
    other.ny = 4
    other.y = np.arange(4.0)
    g = np.ones((4, other.nx))
    other.velocity(2016, g, g, g, g)
    return "grid mismatch (shape): 4x3 grid of vel_Antarctica_ice_velocity_2016.nc vs 2x3 grid of elev_antarctica_elevation_2015.nc"


def _append_to_config(c: TinyCase, text: str) -> None:
    config = c.root / "config.yaml"
    config.write_text(config.read_text() + text)


def _replace_in_config(c: TinyCase, old: str, new: str) -> None:
    config = c.root / "config.yaml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))


def _break_yaml(c: TinyCase) -> str:
    (c.root / "config.yaml").write_text("compat: fixed\nobservations: [unclosed\n")
    return "config.yaml: malformed YAML"


def _break_unknown_key(c: TinyCase) -> str:
    _append_to_config(c, "inferense: {draws: 10}\n")
    return "config.yaml: unknown key 'inferense'"


def _break_target_accept(c: TinyCase) -> str:
    _append_to_config(c, "inference: {target_accept: 1.5}\n")
    return "config.yaml: key 'inference.target_accept'"


def _break_stream_weights(c: TinyCase) -> str:
    _append_to_config(c, "inference: {stream_weights: {thick: 0.7, vel: 0.7}}\n")
    return "key 'inference.stream_weights'"


def _break_negative_size(c: TinyCase) -> str:
    _append_to_config(c, "inference: {subsample: {size: -5}}\n")
    return "key 'inference.subsample.size'"


def _break_duplicate_section(c: TinyCase) -> str:
    lines = len((c.root / "config.yaml").read_text().splitlines())
    _append_to_config(c, "compat: fixed\n")
    return f"config.yaml: duplicate key 'compat' at line {lines + 1} (first at line 1)"


def _break_duplicate_nested_key(c: TinyCase) -> str:
    lines = len((c.root / "config.yaml").read_text().splitlines())
    _append_to_config(c, "inference:\n  seed: 7\n  draws: 300\n  seed: 8\n")
    return f"config.yaml: duplicate key 'inference.seed' at line {lines + 4} (first at line {lines + 2})"


def _break_float_version(c: TinyCase) -> str:
    _replace_in_config(c, "observations:\n", "observations:\n  version: 1.10\n")  # YAML's float 1.1
    return ("config.yaml: key 'observations.version' at line 5: YAML reads 1.10 as the number 1.1, not text; "
            'quote it: version: "1.10"')


def _break_int_pattern(c: TinyCase) -> str:
    _replace_in_config(c, "ensemble:\n", "ensemble:\n  pattern: 2026\n")
    return ("config.yaml: key 'ensemble.pattern' at line 3: YAML reads 2026 as the number 2026, not text; "
            'quote it: pattern: "2026"')


def _break_boolean_variable(c: TinyCase) -> str:
    _replace_in_config(c, "ensemble:\n", "ensemble:\n  vx_var: no\n")
    return ("config.yaml: key 'ensemble.vx_var' at line 3: YAML reads no as the boolean False, not text; "
            'quote it: vx_var: "no"')


def _break_boolean_seed(c: TinyCase) -> str:
    _append_to_config(c, "inference:\n  seed: yes\n")  # pydantic alone would take it as seed 1
    lines = len((c.root / "config.yaml").read_text().splitlines())
    return f"config.yaml: key 'inference.seed' at line {lines}: YAML reads yes as the boolean True, not a number"


def _break_units(c: TinyCase) -> str:
    (c.root / "config.yaml").write_text((c.root / "config.yaml").read_text().replace("prototype", "fixed"))
    g = np.ones((3, c.ny, c.nx))
    c.member(2, np.arange(3.0), g, g, g, units="fortnights since 2015-01-01")
    return "run02_regridded.nc: time variable 'time': unknown time unit 'fortnights'"


BREAKS: dict[str, Callable[[TinyCase], str]] = {
    f.__name__.removeprefix("_break_"): f
    for f in (_break_missing_folder, _break_no_match, _break_missing_variable, _break_one_d_field, _break_corrupt,
              _break_all_nan, _break_one_member, _break_duplicate_ids, _break_grid, _break_grid_shape, _break_yaml,
              _break_unknown_key, _break_target_accept, _break_stream_weights, _break_negative_size, _break_units,
              _break_duplicate_section, _break_duplicate_nested_key, _break_float_version, _break_int_pattern,
              _break_boolean_variable, _break_boolean_seed)
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_bad_input_exits_2_with_one_line(tiny, tmp_path: Path, capsys, name: str) -> None:
    case = tiny()
    config = case.config("fixed" if name == "all_nan" else "prototype")  # the prototype reads an all-NaN year as data
    expected = BREAKS[name](case)
    out = tmp_path / "out" / "prepared.npz"
    status = main(["prepare", str(config), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert expected in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())  # not even a temporary file


def test_weights_with_bad_trace_exit_2(tiny, tmp_path: Path, capsys) -> None:
    case = tiny()
    trace = tmp_path / "trace.nc"
    trace.write_bytes(b"garbage")
    out = tmp_path / "w.csv"
    assert main(["weights", str(case.config()), "--trace", str(trace), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trace.nc: no readable 'posterior' group" in err[0]
    assert not out.exists()


def test_console_script_prints_no_traceback(tiny, tmp_path: Path) -> None:
    case = tiny()
    _break_corrupt(case)
    proc = subprocess.run([sys.executable, "-m", "fusion.cli", "prepare", str(case.config()), "--out", str(tmp_path / "p.npz")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_an_unquoted_date_is_the_text_written(tiny) -> None:
    """`version: 2026-04-30` unquoted is YAML's date; the reader keeps it as the text the user wrote."""
    from fusion.config import load_config

    case = tiny()
    config = case.config()
    config.write_text(config.read_text().replace("observations:\n", "observations:\n  version: 2026-04-30\n", 1))
    assert load_config(config).observations.version == "2026-04-30"
