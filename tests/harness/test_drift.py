"""`harness baseline` and the `drift` check on a tiny case of a team's own: a planted change of
FUSION's defaults turns drift red, naming the config difference and the members that moved beyond
their MCSE; after `--accept` it is green and the history shows both baselines; an unchanged rerun
is green bit for bit; every bad input is one line and exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fusion.io import SUCCESS
from harness import cli
from harness import runner
from harness.cases.baseline_store import RECORD, read_baselines
from harness.checks.drift import compare, drift_gates
from harness.gates import DriftGate
from harness.testing import planted_default
from tests.helpers import TinyCase, write_nc

YEARS = (2015, 2016, 2017, 2018)
MEMBERS = 4


def _tiny_case(root: Path, **case_keys: Any) -> Path:
    """A 2 × 3 grid, 4 yearly steps, 4 members whose velocity trends differ by 2 m/yr per member,
    small velocity errors (so the inflation matters), and projection inputs; compat fixed, tempered."""
    rng = np.random.default_rng(0)
    c = TinyCase(root / "inputs")
    g = np.ones((c.ny, c.nx))
    for i, year in enumerate(YEARS):
        c.thickness(year, 100.0 * g - i + 0.1 * rng.standard_normal(g.shape), 0.5 * g)
        vx, vy = (v * g + 2 * i + rng.standard_normal(g.shape) for v in (50.0, 20.0))
        c.velocity(year, vx, vy, 0.5 * g, 0.5 * g)
    t = np.arange(len(YEARS), dtype=np.float64) + YEARS[0]
    steps = np.arange(len(YEARS))[:, None, None] * g
    for k in range(MEMBERS):
        c.member(k + 1, t, 100.0 - steps, 50.0 + (2 + 2 * k) * steps, 20.0 + (2 + 2 * k) * steps)
        hist = {"time": (("time",), np.array([2000.0, 2015.0]), {"units": "years"}),
                "totig": (("time",), np.array([3e16, 3e16 - 1e13]), {})}
        fwd = {"time": (("time",), np.array([2015.0, 2100.0]), {"units": "years"}),
               "totig": (("time",), np.array([3e16 - 1e13, 3e16 - (k + 2) * 1e13]), {})}
        write_nc(root / "inputs/projection/historical" / f"run{k + 1:02d}.nc", hist)
        write_nc(root / "inputs/projection/forward" / f"run{k + 1:02d}.nc", fwd)
    config = {
        "compat": "fixed",
        "observations": {"thickness": {"dir": "inputs/obs/elev"}, "velocity": {"dir": "inputs/obs/vel"}},
        "ensemble": {"dir": "inputs/ensemble"},
        "inference": {"draws": 300, "tune": 300, "chains": 2},  # velocity_inflation: FUSION's default
        "likelihood": {"form": "tempered"},  # the case's own form, whichever default FUSION has
        "projection": {"historical_dir": "inputs/projection/historical", "forward_dir": "inputs/projection/forward"},
    }
    (root / "fusion.yaml").write_text(yaml.safe_dump(config))
    case = {"name": "tiny", "config": "fusion.yaml", "checks": ["drift"], **case_keys}
    (root / "case.yaml").write_text(yaml.safe_dump(case))
    return root


@pytest.fixture(scope="module")
def baselined(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny case with one baseline, recorded once for the module (each test copies it)."""
    case = _tiny_case(tmp_path_factory.mktemp("drift") / "tiny")
    assert cli.main(["baseline", "--case", str(case)]) == 0
    return case


def _copy(baselined: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(baselined, tmp_path / "tiny"))


def _drift(case: Path, out: Path) -> tuple[int, dict[str, Any]]:
    outcome = runner.run(runner.RunOptions(out=out, checks=("drift",), case_dirs=(case,)), progress=lambda _: None)
    doc = json.loads((out / "report.json").read_text())
    (record,) = [r for r in doc["checks"] if r["name"] == "drift"]
    return outcome.exit_code, record


def _table(record: dict[str, Any], title: str) -> list[list[Any]]:
    (table,) = [t for t in record["tables"] if t["title"].startswith(title)]
    return table["rows"]


def test_baseline_records_fusions_outputs_atomically(baselined: Path) -> None:
    (base,) = read_baselines(baselined, "tiny")
    assert base.path.parent == baselined / "baselines" and base.id == f"{base.record['fusion_version']}-{base.record['config_hash'][:12]}"
    assert sorted(p.name for p in base.path.iterdir()) == sorted(
        [RECORD, SUCCESS, "weights.csv", "summary.json", "run_metadata.json"]
    )
    assert not [p for p in (baselined / "baselines").iterdir() if p.name.startswith(".")], "no temporary left"
    rec = base.record
    assert rec["setup"]["config"]["inference.velocity_inflation"] == 5.0, "the effective config, defaults resolved"
    assert rec["setup"]["config"]["observations.thickness.dir"] == "inputs/obs/elev", "paths relative to the case"
    assert rec["setup"]["likelihood_form"] == "tempered" and rec["provenance"]["compat"] == "fixed"
    det = rec["deterministic"]
    assert len(det["prepared"]["digest"]) == 64 and det["prepared"]["n_vel"] == 2 * det["prepared"]["n_dhdt"]
    assert det["availability"]["streams.vel.kept"] == det["prepared"]["n_vel"]
    assert set(det["member_sle_mm"]) == {f"run{k + 1}" for k in range(MEMBERS)}
    assert "forms.tempered.median" in det["sensitivity"]
    sampled = rec["sampled"]
    for name in [f"w[run{k + 1}]" for k in range(MEMBERS)] + ["sigma_base_vel", "projection.weighted_mean.median"]:
        assert sampled[name]["mcse"] > 0, name
    weights = sum(sampled[f"w[run{k + 1}]"]["mean"] for k in range(MEMBERS))
    assert weights == pytest.approx(1.0)
    meta = json.loads((base.path / "run_metadata.json").read_text())
    assert meta["config_hash"] == rec["config_hash"] and rec["accepted"] is None


def test_an_unchanged_rerun_is_green_bit_for_bit(baselined: Path, tmp_path: Path) -> None:
    case = _copy(baselined, tmp_path)
    code, record = _drift(case, tmp_path / "out")
    assert code == 0 and record["status"] == "pass", record["messages"]
    fig = record["figures"]
    assert fig["setup_differences"] == 0 and fig["deterministic_differing"] == 0 and fig["sampled_beyond"] == 0
    assert fig["deterministic_compared"] > 50 and fig["sampled_compared"] == MEMBERS + 4 + 4
    (base,) = read_baselines(case, "tiny")
    fresh = json.loads((tmp_path / "out/drift/tiny/fresh.json").read_text())
    assert fresh["deterministic"] == base.record["deterministic"], "bit for bit where deterministic"
    assert fresh["sampled"] == base.record["sampled"] and fig["max_z"] == 0.0, "and the sampler is seeded"
    assert _table(record, "Setup") == [["(no difference)", "", "", ""]]


def test_an_upgrade_that_changes_nothing_is_green_and_shows_the_versions(baselined: Path, tmp_path: Path) -> None:
    case = _copy(baselined, tmp_path)
    (base,) = read_baselines(case, "tiny")
    old = {**base.record, "fusion_version": "0.0.9", "id": base.id.replace(base.record["fusion_version"], "0.0.9", 1)}
    shutil.move(base.path, case / "baselines" / old["id"])
    (case / "baselines" / old["id"] / RECORD).write_text(json.dumps(old))  # as the previous release wrote it
    code, record = _drift(case, tmp_path / "out")
    assert code == 0 and record["figures"]["baseline"] == old["id"], record["messages"]
    assert _table(record, "Setup") == [["fusion version", "0.0.9", base.record["fusion_version"], "no (provenance)"]]


def test_a_changed_default_is_red_until_accepted_and_the_history_keeps_both(baselined: Path, tmp_path: Path) -> None:
    case = _copy(baselined, tmp_path)
    (first,) = read_baselines(case, "tiny")
    with planted_default("inference.velocity_inflation", 4.0):  # the new release; case files unchanged
        code, record = _drift(case, tmp_path / "red")
        assert code == 1 and record["status"] == "fail"
        messages = record["messages"]
        assert "setup differs from baseline" in messages[0] and "config inference.velocity_inflation: 5.0 → 4.0" in messages[0]
        assert any("expected only once a reviewer accepts it: harness baseline" in m for m in messages)
        moved = record["figures"]["moved"]
        assert moved and all(q.startswith("w[") or q.startswith("projection") or q.startswith("sigma") for q in moved)
        assert {q for q in moved if q.startswith("w[")}, "members moved beyond their MCSE"
        assert any(m.startswith(f"{moved[0]} moved ") and "beyond its MCSE" in m for m in messages)
        rows = _table(record, "What moved")
        beyond = [r for r in rows if r[7].startswith("moved beyond")]
        assert [r[0] for r in beyond] == moved and all(r[5] in ("up", "down") and abs(r[6]) > 4 for r in beyond)
        assert ["config inference.velocity_inflation", 5.0, 4.0, "yes"] in _table(record, "Setup")
        page = (tmp_path / "red/report.html").read_text() + (tmp_path / "red/report.md").read_text()
        assert "config inference.velocity_inflation" in page and "What moved" in page and moved[0] in page
        assert cli.main(["baseline", "--case", str(case)]) == 2, "re-baselining needs --accept"
        assert cli.main(["baseline", "--case", str(case), "--accept", "--name", "A. Reviewer",
                         "--note", "inflation 5 → 4 per the release notes"]) == 0  # fmt: skip
        code, record = _drift(case, tmp_path / "red")  # the same --out: the re-baseline is other work
        assert code == 0 and record["status"] == "pass", record["messages"]
    history = _table(record, "Baselines")
    second = read_baselines(case, "tiny")[-1]
    assert [r[0] for r in history] == [first.id, second.id] and first.id != second.id
    assert history[0][4] == "first baseline" and history[1][4:8] == [
        "A. Reviewer", "inflation 5 → 4 per the release notes", second.record["accepted"]["at"], first.id
    ]  # fmt: skip
    assert history[1][-1] == "yes" and record["figures"]["baseline"] == second.id
    page = (tmp_path / "red/report.html").read_text()
    assert "Baselines of this case (history)" in page and first.id in page and "A. Reviewer" in page
    # back on the old release: red against the latest baseline, green against the one case.yaml names
    code, record = _drift(case, tmp_path / "old")
    assert code == 1 and "config inference.velocity_inflation: 4.0 → 5.0" in record["messages"][0]
    (case / "case.yaml").write_text((case / "case.yaml").read_text() + f"baseline: {first.id}\n")
    code, record = _drift(case, tmp_path / "old")
    assert code == 0 and record["figures"]["baseline"] == first.id, record["messages"]


def test_reaccepting_at_the_same_version_and_config_keeps_the_replaced_record(baselined: Path, tmp_path: Path) -> None:
    case = _copy(baselined, tmp_path)  # another folder: the config's paths, and so its hash, differ from the fixture's
    assert cli.main(["baseline", "--case", str(case), "--accept", "--name", "A", "--note", "moved the case"]) == 0
    origin, first = read_baselines(case, "tiny")
    assert cli.main(["baseline", "--case", str(case), "--accept", "--name", "B", "--note", "rerun after review"]) == 0
    assert [b.id for b in read_baselines(case, "tiny")] == [origin.id, first.id], "replaced in its folder"
    again = read_baselines(case, "tiny")[-1]
    assert again.record["replaced"] == [{"created_at": first.created_at, "accepted": first.accepted}]
    assert again.record["accepted"]["previous"] == first.id
    code, record = _drift(case, tmp_path / "out")
    assert code == 0, record["messages"]
    history = _table(record, "Baselines")
    assert [r[0] for r in history] == [origin.id, f"{first.id} (replaced)", first.id]
    assert history[1][1] == first.created_at and history[1][4:6] == ["A", "moved the case"]
    assert history[2][4:6] == ["B", "rerun after review"] and history[2][-1] == "yes"


def test_a_case_without_projection_inputs_baselines_weights_and_noise(tmp_path: Path) -> None:
    case = _tiny_case(tmp_path / "tiny")
    shutil.rmtree(case / "inputs/projection")
    assert cli.main(["baseline", "--case", str(case)]) == 0
    (base,) = read_baselines(case, "tiny")
    assert set(base.record["deterministic"]) == {"prepared", "availability"} and base.record["reported"] == {}
    assert sorted(base.record["sampled"]) == sorted(
        [f"w[run{k + 1}]" for k in range(MEMBERS)] + ["beta_thick", "beta_vel", "sigma_base_thick", "sigma_base_vel"]
    )
    code, record = _drift(case, tmp_path / "out")
    assert code == 0 and record["figures"]["sampled_compared"] == MEMBERS + 4, record["messages"]


def _write_record(case: Path, name: str, **changes: Any) -> Path:
    """A baseline folder written by hand (no FUSION run): the shape harness.cases.baseline writes."""
    record = {"schema": 1, "id": "0.0-000000000000", "case": name, "created_at": "2026-01-01T00:00:00", "fusion_version": "0.0",
              "config_hash": "0" * 64, "setup": {}, "deterministic": {}, "sampled": {}, "reported": {},
              "provenance": {}, "accepted": None, **changes}  # fmt: skip
    folder = case / "baselines" / str(record["id"])
    folder.mkdir(parents=True)
    (folder / RECORD).write_text(json.dumps(record))
    (folder / SUCCESS).write_text("")
    return folder


NO_BASELINE = "baselines: no baseline; record one with `harness baseline --case"


@pytest.mark.parametrize(
    ("case_keys", "make", "argv", "needle"),
    [
        ({}, None, ["run"], NO_BASELINE),
        ({"checks": ["convergence"]}, None, ["run", "--check", "drift"], NO_BASELINE),
        ({"baseline": "9.9-abc"}, "valid", ["run"], "key 'baseline': no baseline '9.9-abc'"),
        ({}, "not-json", ["run"], "baseline.json: corrupt baseline: not JSON"),
        ({}, "no-success", ["run"], "corrupt baseline: no _SUCCESS"),
        ({}, "bad-part", ["run"], "corrupt baseline: 'sampled' is not an object"),
        ({}, "bad-number", ["run"], "corrupt baseline: sampled 'w[run1]' is not {mean, mcse} numbers"),
        ({}, "other-case", ["run"], "baseline of case 'other', not of 'tiny' (copied from another case?)"),
        ({}, "other-case", ["baseline"], "baseline of case 'other', not of 'tiny'"),
        ({}, "not-json", ["baseline"], "corrupt baseline: not JSON"),
        ({}, "valid", ["baseline"], "holds baseline 0.0-000000000000 already; re-baselining is a reviewed act"),
        ({}, None, ["baseline", "--accept", "--note", "why"], "--accept needs --name NAME"),
        ({}, None, ["baseline", "--accept", "--name", "A"], "--accept needs --note TEXT"),
        ({}, None, ["baseline", "--name", "A"], "--name and --note sign an --accept"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case_keys: dict[str, Any], make: str | None,
    argv: list[str], needle: str,
) -> None:
    case = _tiny_case(tmp_path / "tiny", **case_keys)
    if make is not None:
        folder = _write_record(case, "other" if make == "other-case" else "tiny",
                               **{"bad-part": {"sampled": [1]}, "bad-number": {"sampled": {"w[run1]": {"mean": "0.5"}}}}.get(make, {}))
        if make == "not-json":
            (folder / RECORD).write_text('{"schema": 1, "id": ')
        if make == "no-success":
            (folder / SUCCESS).unlink()
    before = sorted(p.relative_to(case) for p in case.rglob("*"))
    out = tmp_path / "out"
    where = ["--case", str(case), "--out", str(out)] if argv[0] == "run" else ["--case", str(case)]
    assert cli.main([argv[0], *where, *argv[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: ") and needle in err and "\n" not in err, err
    assert not out.exists() and sorted(p.relative_to(case) for p in case.rglob("*")) == before, "nothing written"


def _record(**sampled: tuple[float, float]) -> dict[str, Any]:
    return {"fusion_version": "1", "setup": {"config": {"a": 1.0}, "likelihood_form": "tempered", "inputs_sha256": {}},
            "deterministic": {"prepared": {"digest": "x", "n": 3}, "sensitivity": {"m": 0.1}},
            "sampled": {k: {"mean": m, "mcse": e} for k, (m, e) in sampled.items()}, "reported": {"median": 2.0},
            "provenance": {"versions": {}}}  # fmt: skip


def test_compare_is_bitwise_where_deterministic_and_a_z_test_where_sampled() -> None:
    base = _record(**{"w[a]": (0.50, 0.01), "w[b]": (0.50, 0.01), "beta": (1.0, float("nan"))})
    fresh = _record(**{"w[a]": (0.56, 0.01), "w[b]": (0.44, 0.01), "beta": (1.0, float("nan"))})
    fresh["deterministic"]["sensitivity"]["m"] = float(np.nextafter(0.1, 1.0))  # one ULP
    fresh["setup"]["config"]["a"] = 2.0
    drift = compare(base, fresh, k=4.0)
    assert [(d.key, d.baseline, d.fresh) for d in drift.to_review] == [("config a", 1.0, 2.0)]
    assert [item for item, _, _ in drift.deterministic] == ["sensitivity.m"]
    beyond = {t.quantity: t for t in drift.beyond}
    assert set(beyond) == {"w[a]", "w[b]"} and beyond["w[a]"].delta > 0 > beyond["w[b]"].delta
    assert beyond["w[a]"].z == pytest.approx(0.06 / np.hypot(0.01, 0.01))
    assert {t.quantity: t.z for t in drift.sampled}["beta"] == 0.0, "no spread, no change: within"
    within = compare(base, _record(**{"w[a]": (0.52, 0.01), "w[b]": (0.48, 0.01), "beta": (1.0, None)}), k=4.0)
    assert not within.beyond and not within.deterministic and not within.setup


def test_a_changed_rule_of_fusion_shows_in_the_setup_though_no_config_key_changed() -> None:
    """The mass matrix nutpie adapts is resolved from `compat` when `inference.mass_matrix` is unset:
    a release changing that rule (or a baseline from before it was recorded) is a setup difference."""
    base, fresh = _record(), _record()
    base["setup"]["config"]["inference.mass_matrix"] = fresh["setup"]["config"]["inference.mass_matrix"] = None
    base["setup"]["mass_matrix"], fresh["setup"]["mass_matrix"] = "diag", "low_rank"
    assert [(d.key, d.baseline, d.fresh) for d in compare(base, fresh, k=4.0).to_review] == [
        ("nutpie mass matrix", "diag", "low_rank")]
    del base["setup"]["mass_matrix"]
    assert [d.baseline for d in compare(base, fresh, k=4.0).to_review] == ["absent"]
    fresh["setup"]["config"]["inference.mass_matrix"] = "low_rank"  # said by the config: its own line
    assert [d.key for d in compare(base, fresh, k=4.0).to_review] == ["config inference.mass_matrix"]


def test_the_drift_gates_follow_the_configured_bound() -> None:
    figures = {"setup_differences": 0, "deterministic_differing": 0, "max_z": 1.6}
    assert all(g["passed"] for g in drift_gates(figures, DriftGate()))
    red = [g for g in drift_gates(figures, DriftGate(stat_k=1.0)) if not g["passed"]]
    assert [g["bound"] for g in red] == [1.0]
    assert [g["passed"] for g in drift_gates({**figures, "setup_differences": 1})] == [False, True, True]
