"""`harness gates > g.yaml`, one threshold tightened in g.yaml, `harness run --config g.yaml`: the
matching check turns red, with the tightened bound in report.json, report.md and report.html —
for every check. Each tightened value sits just past what the bundled run measures (the quick
suite's report.json), so the same run passes at the defaults.

The cheap checks run by default; the rest (minutes under load) behind the `full` marker.
`drift` needs a case with a baseline: the tiny case of `test_drift`, its baseline's sampled mean
of σ_base_thick moved by 2 combined MCSE (what another chain of the same FUSION gives): green
at `stat_k` 4 (after a second batch of fresh runs); moved by 8, red at 1 (a z of 2 is read with
an interval reaching 0, so no bound is clearly below it). `adequacy` needs data it fits less well than the example (whose worst
region p is 1.0, its held-out coverage above nominal: no bound can be tightened past those): the
example with a mild regional trend in one year's thickness, green at `alpha` 0.01, red at 0.5.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from harness import cli
from harness.cases.baseline_store import RECORD

# (check, section, key, tightened value, words of the gate's figure that turns red)
CHEAP = [
    ("parity", "parity", "stat_k", 1.0, "statistical: max |Δ|"),
    ("convergence", "convergence", "ess_bulk_min", 5000.0, "ess_bulk_per_chain_min"),  # far past borderline: no longer run
    # the example's noise-model weights are all but one-hot (σ across seeds ~1e-65): only 0 is tighter
    ("stability", "stability", "max_sd", 0.0, "max_sd"),
    ("agreement", "agreement", "sd_ratio_min", 0.99, "min sd ratio"),
]
SLOW = [
    ("sbc", "sbc", "max_failed_fraction", 0.01, "failed fits"),
    ("coverage", "coverage", "max_calibration_error", 0.001, "calibration_error"),
    ("likelihood", "likelihood", "alpha", 0.5, "member reliability p"),
]


def _tightened(tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, key: str, value: float) -> Path:
    """What `harness gates` prints, with one threshold changed (as a person edits the file)."""
    capsys.readouterr()  # what earlier runs printed
    assert cli.main(["gates"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert key in data[section], (section, key)
    data[section][key] = value
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run_red(tmp_path: Path, check: str, config: Path | None, extra: list[str], figure: str, bound: float) -> None:
    """The run exits 1; the check's record fails on a gate of `figure` at the tightened `bound`,
    which report.md and report.html both show."""
    out = tmp_path / "out"
    argv = ["run", "--check", check, "--out", str(out), *extra] + (["--config", str(config)] if config else [])
    code = cli.main(argv)
    doc = json.loads((out / "report.json").read_text())
    records = [r for r in doc["checks"] if r["name"] == check]
    red = [g for r in records for g in r["gates"] if not g["passed"]]
    assert code == 1 and any(r["status"] == "fail" for r in records), [(r["case"], r["status"], r["messages"][:2]) for r in records]
    hits = [g for g in red if figure in g["figure"] and math.isclose(g["bound"], bound)]
    assert hits, red
    shown = hits[0]["threshold"]
    for page in ("report.md", "report.html"):
        assert shown in (out / page).read_text(), (page, shown)


def _green(tmp_path: Path, check: str, extra: list[str]) -> None:
    out = tmp_path / "defaults"
    assert cli.main(["run", "--check", check, "--out", str(out), *extra]) == 0


@pytest.mark.parametrize(("check", "section", "key", "value", "figure"), CHEAP)
def test_a_tightened_threshold_turns_its_check_red_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], check: str, section: str, key: str, value: float, figure: str
) -> None:
    _run_red(tmp_path, check, _tightened(tmp_path, capsys, section, key, value), [], figure, value)


@pytest.mark.full
@pytest.mark.parametrize(("check", "section", "key", "value", "figure"), SLOW)
def test_a_tightened_threshold_of_a_long_check_turns_it_red_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], check: str, section: str, key: str, value: float, figure: str
) -> None:
    _run_red(tmp_path, check, _tightened(tmp_path, capsys, section, key, value), [], figure, value)


def test_drift_turns_red_at_a_tightened_stat_k(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.harness.test_drift import _tiny_case

    case = _tiny_case(tmp_path / "tiny")
    assert cli.main(["baseline", "--case", str(case)]) == 0
    (record_path,) = (case / "baselines").glob(f"*/{RECORD}")
    record = json.loads(record_path.read_text())
    moved = record["sampled"]["sigma_base_thick"]
    moved["mean"] += 2.0 * math.sqrt(2.0) * moved["mcse"]  # z = 2 against a fresh run with the same MCSE
    record_path.write_text(json.dumps(record))
    _green(tmp_path, "drift", ["--case", str(case)])  # one run's interval reaches past 4: green after a batch more
    # a z of 2 cannot be told from 1 (the lower end is 0 with a dozen quantities, Bonferroni): 8 can
    moved["mean"] += 6.0 * math.sqrt(2.0) * moved["mcse"]
    record_path.write_text(json.dumps(record))
    _run_red(tmp_path, "drift", _tightened(tmp_path, capsys, "drift", "stat_k", 1.0), ["--case", str(case)],
             "", 1.0)


def _trended_example(root: Path) -> Path:
    """The example as a case folder, one year's thickness raised along a ramp in one grid box."""
    from fusion.data.synthetic import write_example

    config = write_example(root)
    path = sorted((root / "obs" / "elev").glob("*.nc"))[-1]  # the last year: every interval ending there
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    var = "height"
    ny, nx = ds[var].shape[-2:]
    ramp = np.zeros((ny, nx))
    ramp[ny // 4 : ny // 2, nx // 4 : nx // 2] = np.linspace(0.0, 1.0, nx // 2 - nx // 4)[None, :]
    ds[var] = ds[var] + TREND_M * ramp.reshape(ds[var].shape)
    path.unlink()
    ds.to_netcdf(path)
    (root / "case.yaml").write_text(yaml.safe_dump({"name": "trended", "config": config.name, "checks": ["adequacy"]}))
    return root


TREND_M = 3.0  # metres at the box's far edge in the last year: worst thickness p 0.24 (Laplace fits), between 0.01 and 0.5


@pytest.mark.full
def test_adequacy_turns_red_at_a_tightened_alpha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = _trended_example(tmp_path / "trended")
    _green(tmp_path, "adequacy", ["--case", str(case)])
    _run_red(tmp_path, "adequacy", _tightened(tmp_path, capsys, "adequacy", "alpha", 0.5), ["--case", str(case)],
             "worst region", 0.5)

