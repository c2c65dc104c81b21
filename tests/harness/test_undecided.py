"""A gate still undecided at its cap: `harness run` fails (exit 1) unless `--allow-undecided`, and
report.json, report.md and report.html show it as its own status, with its interval, its margin
in half-widths and the replicates it would take. Stand-in checks: no sampling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness import cli, runner
from harness.checks import CheckContext, CheckResult
from harness.verdict import Plan, normal, sequential


def undecided(ctx: CheckContext) -> CheckResult:
    """A figure whose interval holds the bound at every look up to the cap (40 replicates)."""
    decision = sequential(Plan(first=10, batch=10, cap=40), lambda n, level: normal(0.95, 0.3 / n**0.5, level, n),
                          "≤", 1.0)
    return CheckResult(name="?", case=ctx.case, status=decision.verdict, figures={"x": 0.95},
                       gates=[decision.record("x", "units")], messages=["x: bound inside the interval"])


def passing(ctx: CheckContext) -> CheckResult:
    decision = sequential(Plan(first=10, batch=10, cap=40), lambda n, level: normal(0.2, 0.01, level, n), "≤", 1.0)
    return CheckResult(name="?", case=ctx.case, status=decision.verdict, figures={"x": 0.2},
                       gates=[decision.record("x", "units")])


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    found = {"convergence": undecided, "stability": passing}
    monkeypatch.setattr(runner, "_load", lambda name, reg: found[name])
    return found


ARGS = ["run", "--check", "convergence", "--check", "stability"]


def test_undecided_at_the_cap_fails_the_run_unless_allowed(registry, tmp_path: Path, capsys) -> None:
    assert cli.main([*ARGS, "--out", str(tmp_path / "a")]) == 1
    assert (tmp_path / "a" / "_RUN_FAILED").exists()
    assert "1 undecided" in capsys.readouterr().out
    assert cli.main([*ARGS, "--allow-undecided", "--out", str(tmp_path / "b")]) == 0
    doc = json.loads((tmp_path / "b" / "report.json").read_text())
    assert doc["run"]["allow_undecided"] is True and doc["run"]["marker"] == "_RUN_SUCCESS"
    assert [c["status"] for c in doc["checks"] if c["name"] == "convergence"] == ["undecided"]


def test_reports_show_the_status_interval_margin_and_replicates_needed(registry, tmp_path: Path) -> None:
    out = tmp_path / "a"
    cli.main([*ARGS, "--out", str(out)])
    (rec,) = [c for c in json.loads((out / "report.json").read_text())["checks"] if c["name"] == "convergence"]
    (gate,) = rec["gates"]
    assert rec["status"] == "undecided" and gate["verdict"] == "undecided" and gate["passed"] is False
    assert gate["n"] == gate["cap"] == 40 and [n for n, _ in gate["looks"]] == [10, 20, 30, 40]
    assert gate["interval"][0] < 1.0 < gate["interval"][1] and -1 <= gate["margin_hw"] <= 1
    assert gate["needed"] > 40  # projected from the interval's width
    md = (out / "report.md").read_text()
    assert "| convergence | small | UNDECIDED |" in md
    assert re.search(r"\| 0\.95 \[0\.8\d+, 1\.0\d+\] \(9\d\.\d%\) \| \+0\.\d+ hw \|", md), md
    assert f"40 of 40; about {gate['needed']} to decide" in md
    assert "Why it is undecided" in md
    html = (out / "report.html").read_text()
    assert 'class="status undecided">UNDECIDED' in html and "banner undecided" in html
    assert ".status.undecided{color:#6639ba}" in html  # its own colour
    (ok,) = [c for c in json.loads((out / "report.json").read_text())["checks"] if c["name"] == "stability"]
    assert ok["gates"][0]["verdict"] == "pass" and ok["gates"][0]["looks"] == [[10, "pass"]]
