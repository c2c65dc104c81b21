"""`harness run --case DIR` on case folders written by hand in DESIGN.md's format.

Each case is built in `tmp_path` from a bundled case's inputs (left where they are, by
absolute path) and the prototype's own reference files (golden/<case>/); nothing is
recomputed by FUSION on the reference side, so a green run is parity and a planted
one-ULP change must turn it red, naming the array, the index and the ULP distance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from harness import cli
from harness.cases import load_case
from harness.cases.reference import read_reference_weights
from harness.checks.parity.statistical import UNKNOWN_NO_STATS
from harness.paths import repo_root

REPO = repo_root()
GOLDEN = REPO / "golden"
FIXTURES = REPO / "fixtures" / "cases"


def make_case(
    root: Path,
    source: str = "subsample",
    files: tuple[str, ...] = ("prepared.npz", "model_weights_table.csv", "posterior.nc"),
    **case_keys: object,
) -> Path:
    """A case folder: case.yaml, its own FUSION config (inputs by absolute path) and reference/."""
    root.mkdir(parents=True)
    cfg = yaml.safe_load((FIXTURES / source / "config.yaml").read_text())
    for section, key in (("observations", "thickness"), ("observations", "velocity")):
        cfg[section][key]["dir"] = str(FIXTURES / source / cfg[section][key]["dir"])
    cfg["ensemble"]["dir"] = str(FIXTURES / source / cfg["ensemble"]["dir"])
    (root / "fusion.yaml").write_text(yaml.safe_dump(cfg))
    keys = {"name": "mine", "config": "fusion.yaml", "checks": ["parity"], **case_keys}
    (root / "case.yaml").write_text(yaml.safe_dump({k: v for k, v in keys.items() if v is not None}))
    (root / "reference").mkdir()
    for name in files:
        shutil.copyfile(GOLDEN / source / name, root / "reference" / name)
    return root


def run_case(tmp_path: Path, *cases: Path, out: str = "out", extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    args = ["run", "--check", "parity", "--out", str(tmp_path / out), *extra]
    for case in cases:
        args += ["--case", str(case)]
    code = cli.main(args)
    report = tmp_path / out / "report.json"
    return code, json.loads(report.read_text()) if report.is_file() else {}


def parity_record(report: dict) -> dict:
    (record,) = [r for r in report["checks"] if r["name"] == "parity"]
    return record


def test_installed_package_in_another_folder_passes_bit_for_bit(tmp_path: Path) -> None:
    """The packages alone (no checkout beside them: no golden/, no fixtures/), run from an unrelated cwd."""
    site = tmp_path / "site"
    for package in ("fusion", "harness"):
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__", "test_*"))
    case = make_case(tmp_path / "cases" / "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--case", str(case), "--check", "parity", "--out", "out"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = parity_record(json.loads((elsewhere / "out" / "report.json").read_text()))
    assert record["case"] == "mine" and record["status"] == "pass"
    for component in ("prepared", "plugin_weights", "pipeline_weights"):
        assert record["figures"][component]["passed"] is True, component
    assert record["figures"]["prepared"]["F"] == "identical"
    assert record["figures"]["pipeline_weights"]["cells_different"] == 0
    assert record["provenance"]["case"] == str(case.resolve())
    assert (elsewhere / "out" / "parity" / "mine" / "_SUCCESS").is_file()
    assert not (site / "golden").exists() and not (REPO / "out").exists()


def test_one_ulp_in_a_reference_array_or_weight_is_red_and_resume_follows_the_case(tmp_path: Path) -> None:
    case = make_case(tmp_path / "mine")
    code, report = run_case(tmp_path, case)
    assert code == 0, parity_record(report)["messages"]
    code, report = run_case(tmp_path, case)
    assert code == 0 and parity_record(report)["resumed"] is True, "an unchanged case is not redone"

    npz = case / "reference" / "prepared.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["F"][2, 17] = np.nextafter(arrays["F"][2, 17], np.inf)
    np.savez(npz, **arrays)
    code, report = run_case(tmp_path, case)
    record = parity_record(report)
    assert code == 1 and record["status"] == "fail" and record["resumed"] is False
    message = next(m for m in record["messages"] if m.startswith("prepared: F:"))
    assert "first at F[2, 17]" in message and message.endswith("1 ULP apart"), message

    shutil.copyfile(GOLDEN / "subsample" / "prepared.npz", npz)
    table = case / "reference" / "model_weights_table.csv"
    lines = table.read_text().splitlines()
    member, weight, loglik = lines[2].split(",")
    nudged = repr(float(np.nextafter(float(weight), 1.0)))
    lines[2] = f"{member},{nudged},{loglik}"
    table.write_text("\n".join(lines) + "\n")
    code, report = run_case(tmp_path, case)
    record = parity_record(report)
    assert code == 1
    expected = (
        f"pipeline_weights: mine/reference/model_weights_table.csv: {member}.weight: "
        f"obtained {weight} vs golden {nudged} (1 ULP), bit-exact"
    )
    assert expected in record["messages"], record["messages"]
    assert record["figures"]["prepared"]["passed"] is True


def test_a_missing_reference_file_is_reported_as_skipped(tmp_path: Path) -> None:
    case = make_case(tmp_path / "mine", files=("model_weights_table.csv", "posterior.nc"))
    code, report = run_case(tmp_path, case)
    record = parity_record(report)
    assert code == 0 and record["status"] == "pass"
    assert set(record["figures"]) >= {"pipeline_weights", "skipped"}
    assert "prepared" not in record["figures"] and "plugin_weights" not in record["figures"]
    skipped = record["figures"]["skipped"]
    assert skipped["prepared"] == "no prepared.npz in the reference"
    assert skipped["statistical"] == "no sampled_posterior.nc in the reference"
    assert "skipped prepared: no prepared.npz in the reference" in record["messages"]
    assert "skipped prepared: no prepared.npz in the reference" in (tmp_path / "out" / "report.md").read_text()


def test_statistical_parity_from_a_sampled_posterior_without_summary(tmp_path: Path) -> None:
    """With only `sampled_posterior.nc`, the prototype's MCSE comes from the file (arviz_stats)."""
    case = make_case(tmp_path / "mine", source="small", files=("sampled_posterior.nc",))
    code, report = run_case(tmp_path, case)
    record = parity_record(report)
    assert code == 0, record["messages"]
    stat = record["figures"]["statistical"]
    assert stat["passed"] is True and stat["quantities"] == 4 + 5
    assert stat["prototype_mcse"] == "arviz_stats on sampled_posterior.nc"
    assert stat["settings"] == {"draws": 300, "chains": 2}
    side_by_side = stat["convergence"]  # figure → {fusion, prototype}
    assert {"r_hat_max", "ess_bulk_per_chain_min", "divergences", "e_bfmi_min"} <= set(side_by_side)
    assert all(set(pair) == {"fusion", "prototype"} for pair in side_by_side.values())
    assert isinstance(side_by_side["divergences"]["prototype"], int)
    assert isinstance(side_by_side["e_bfmi_min"]["prototype"], float) and stat["gate_prototype"] != UNKNOWN_NO_STATS


def test_statistical_parity_from_a_posterior_without_sample_stats(tmp_path: Path) -> None:
    """A hand-written (or older) `sampled_posterior.nc` with only `posterior` still gets statistical
    parity; the prototype's R-hat and ESS are computed, its divergences and E-BFMI are unknown."""
    case = make_case(tmp_path / "mine", source="small", files=())
    with xr.open_datatree(GOLDEN / "small" / "sampled_posterior.nc") as tree:
        tree["posterior"].to_dataset().load().to_netcdf(case / "reference" / "sampled_posterior.nc", group="posterior")
    code, report = run_case(tmp_path, case)
    record = parity_record(report)
    assert code == 0, record["messages"]
    stat = record["figures"]["statistical"]
    assert stat["passed"] is True and stat["quantities"] == 4 + 5
    theirs = {k: pair["prototype"] for k, pair in stat["convergence"].items()}
    assert theirs["divergences"] == theirs["e_bfmi_min"] == stat["gate_prototype"] == UNKNOWN_NO_STATS
    assert 1.0 <= theirs["r_hat_max"] < 1.1 and theirs["ess_bulk_per_chain_min"] > 0
    assert isinstance(stat["convergence"]["divergences"]["fusion"], int)  # FUSION's side is gated as ever
    assert UNKNOWN_NO_STATS in (tmp_path / "out" / "report.md").read_text()
    assert UNKNOWN_NO_STATS in (tmp_path / "out" / "report.html").read_text()


def test_member_ids_map_the_prototypes_positional_labels() -> None:
    """`run{k}` in the prototype's table is the k-th file of its list: `member_ids[k-1]`."""
    path = GOLDEN / "small" / "model_weights_table.csv"
    ids = ("run1", "run3", "run4", "run7", "run9")
    table = read_reference_weights(path, ids).set_index("member_id")
    positional = read_reference_weights(path).set_index("member_id")
    assert sorted(table.index) == sorted(ids)
    assert table.loc["run7", "weight"] == positional.loc["run4", "weight"]
    assert table.loc["run9", "log_likelihood"] == positional.loc["run5", "log_likelihood"]


# --- bad input: one line, exit 2, nothing left behind ---------------------------------------------


def _edit_npz(case: Path, change) -> None:
    npz = case / "reference" / "prepared.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(npz, **arrays)


def _posterior_on_wrong_dims(case: Path) -> None:
    path = case / "reference" / "posterior.nc"
    with xr.open_datatree(path) as tree:
        post = tree["posterior"].to_dataset().load()
    post["beta_vel"] = post["beta_vel"].isel(chain=0)
    path.unlink()
    xr.DataTree.from_dict({"posterior": post}).to_netcdf(path)


BAD_CASES = {
    "unknown key": (
        lambda c: (c / "case.yaml").write_text("name: mine\nconfig: fusion.yaml\nreferenc: reference\n"),
        "{case}/case.yaml: unknown key 'referenc'; valid: name, config, reference, checks, baseline",
    ),
    "missing config key": (
        lambda c: (c / "case.yaml").write_text("name: mine\n"),
        "{case}/case.yaml: missing required key 'config'",
    ),
    "config file absent": (
        lambda c: (c / "fusion.yaml").unlink(),
        "{case}/case.yaml: key 'config': {case}/fusion.yaml not found",
    ),
    "yaml that would run code": (
        lambda c: (c / "case.yaml").write_text("name: !!python/object/apply:os.system ['true']\nconfig: x\n"),
        "{case}/case.yaml: YAML tag refused at line 1 (files are safe-loaded)",
    ),
    "a key written twice": (
        lambda c: (c / "case.yaml").write_text("name: mine\nconfig: fusion.yaml\nname: yours\n"),
        "{case}/case.yaml: duplicate key 'name' at line 3 (first at line 1)",
    ),
    "a nested key written twice": (
        lambda c: (c / "case.yaml").write_text("name: mine\nconfig: fusion.yaml\nreference:\n  dir: a\n  dir: b\n"),
        "{case}/case.yaml: duplicate key 'reference.dir' at line 5 (first at line 4)",
    ),
    "a nested key written twice in the case's config": (
        lambda c: (c / "fusion.yaml").write_text("projection:\n  target_year: 2100\n  target_year: 2300\n"
                                                 + (c / "fusion.yaml").read_text()),
        "{case}/fusion.yaml: duplicate key 'projection.target_year' at line 3 (first at line 2)",
    ),
    "a name YAML reads as a number": (
        lambda c: (c / "case.yaml").write_text("name: 2026\nconfig: fusion.yaml\n"),
        '{case}/case.yaml: key \'name\' at line 1: YAML reads 2026 as the number 2026, not text; quote it: name: "2026"',
    ),
    "a name YAML reads as a boolean": (
        lambda c: (c / "case.yaml").write_text("config: fusion.yaml\nname: no\n"),
        '{case}/case.yaml: key \'name\' at line 2: YAML reads no as the boolean False, not text; quote it: name: "no"',
    ),
    "y_obs float64": (
        lambda c: _edit_npz(c, lambda a: a.update(y_obs=a["y_obs"].astype(np.float64))),
        "{case}/reference/prepared.npz: y_obs: float64 (20000,), expected float32 1-D of N = 20000",
    ),
    "F of the wrong width": (
        lambda c: _edit_npz(c, lambda a: a.update(F=a["F"][:, :-1])),
        "{case}/reference/prepared.npz: F: float64 (6, 19999), expected float64 M × N (N = 20000)",
    ),
    "counts that do not add up": (
        lambda c: _edit_npz(c, lambda a: a.update(n_vel=a["n_vel"] - 1)),
        "{case}/reference/prepared.npz: n_dhdt 7178 + n_vel 12821 != N = 20000",
    ),
    "an array that needs pickle": (
        lambda c: _edit_npz(c, lambda a: a.update(member_ids=np.array([None] * 6, dtype=object))),
        "{case}/reference/prepared.npz: holds object arrays that need pickle; refused",
    ),
    "weights table without log_likelihood": (
        lambda c: (c / "reference" / "model_weights_table.csv").write_text("model_id,weight\nrun1,1.0\n"),
        "{case}/reference/model_weights_table.csv: lacks column 'log_likelihood' "
        "(expected model_id, weight, log_likelihood)",
    ),
    "posterior scalar not on (chain, draw)": (
        _posterior_on_wrong_dims,
        "{case}/reference/posterior.nc: posterior 'beta_vel' is on ('draw',), expected ('chain', 'draw')",
    ),
    "nothing to compare": (
        lambda c: shutil.rmtree(c / "reference") or (c / "reference").mkdir(),
        "{case}/reference: nothing to compare: no prepared.npz, no model_weights_table.csv with "
        "posterior.nc, no sampled_posterior.nc",
    ),
}


@pytest.mark.parametrize("problem", sorted(BAD_CASES))
def test_bad_case_is_one_line_exit_2_nothing_left(
    problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = make_case(tmp_path / "mine")
    spoil, expected = BAD_CASES[problem]
    spoil(case)
    code, _ = run_case(tmp_path, case)
    assert code == 2
    assert capsys.readouterr().err == "harness: " + expected.format(case=case.resolve()) + "\n"
    assert not (tmp_path / "out").exists()


def test_two_cases_with_the_same_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_case(tmp_path / "a"), make_case(tmp_path / "b")
    assert run_case(tmp_path, a, b)[0] == 2
    assert capsys.readouterr().err == (
        f"harness: {b.resolve()}/case.yaml: case name 'mine' is also the name of {a.resolve()}/case.yaml\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_case_folder_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_case(tmp_path, tmp_path / "nowhere")[0] == 2
    assert capsys.readouterr().err == f"harness: {tmp_path / 'nowhere'}: case folder not found\n"


def test_checks_in_case_yaml_intersect_with_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = make_case(tmp_path / "mine", checks=["convergence"])
    assert load_case(case).checks == ("convergence",)
    assert run_case(tmp_path, case)[0] == 2
    assert capsys.readouterr().err == (
        "harness: nothing to run: no --case folder lists parity under `checks:` in its case.yaml\n"
    )


def test_convergence_runs_on_the_case_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--case` routes the convergence check to the case's own config (sampler replaced by the
    prototype's short trace, which the gate rejects: the check must say so for this case)."""
    from harness.checks import convergence

    with xr.open_datatree(GOLDEN / "small" / "sampled_posterior.nc") as tree:
        short = tree.load()
    seen: list = []

    def fake_sampler(cfg, prepared):
        seen.append((cfg.compat, cfg.inference.draws, prepared.n_members))
        return short

    monkeypatch.setattr(convergence, "sample_trace", fake_sampler)
    case = make_case(tmp_path / "mine", source="small", checks=["convergence"])
    code, report = run_case(tmp_path, case, extra=("--check", "convergence"))
    (record,) = [r for r in report["checks"] if r["name"] == "convergence"]
    assert code == 1 and record["case"] == "mine" and record["status"] == "fail"
    assert seen == [("fixed", convergence.SETTINGS["draws"], 5)]
    assert record["provenance"]["case"] == str(case.resolve())
    assert any(m.startswith("max R-hat 1.0102 > 1.01") for m in record["messages"]), record["messages"]
    assert [r["name"] for r in report["checks"]] == ["convergence"], "parity is not in this case's checks"
