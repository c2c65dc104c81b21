"""Runner, result store, inventory, markers, report and CLI, with stand-in checks (no sampling)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fusion.io import is_complete, write_text
from harness import cli
from harness import runlog
from harness import runner
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.paths import repo_root

REPO = repo_root()


def fake(
    status: str, calls: list[str] | None = None, **figures: float
) -> Callable[[CheckContext], CheckResult]:
    def check(ctx: CheckContext) -> CheckResult:
        if calls is not None:
            calls.append(ctx.case)
        write_text(ctx.artifact_dir / "table.csv", "x\n1\n")
        messages = [f"figure x {figures.get('x', 2.0)} > 1 (over by 1)"] if status == "fail" else []
        return CheckResult(
            name="?",
            case=ctx.case,
            status=status,
            figures={"x": figures.get("x", 2.0)},  # type: ignore[arg-type]
            thresholds={"x": "≤ 1"},
            gates=gates_of(gate_record("x", "≤", 1.0, figures.get("x", 2.0))),
            messages=messages,
            plots=[],
        )

    return check


def boom(ctx: CheckContext) -> CheckResult:
    raise RuntimeError("no data\nsecond line")


def options(out: Path, *checks: str, suite: str = "quick") -> runner.RunOptions:
    return runner.RunOptions(out=out, checks=checks, suite=suite)


def run(out: Path, registry: dict, *checks: str, suite: str = "quick") -> runner.RunOutcome:
    return runner.run(options(out, *checks, suite=suite), registry=registry, progress=lambda line: None)


def test_all_pass_success_marker_and_layout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outcome = run(out, {"parity": fake("pass"), "convergence": fake("pass")}, "parity", "convergence")
    assert outcome.exit_code == 0 and outcome.marker == "_RUN_SUCCESS"
    assert runlog.run_markers(out) == ["_RUN_SUCCESS"]
    for check in ("parity", "convergence"):
        folder = out / check / "all"
        assert (
            is_complete(folder)
            and (folder / "result.json").is_file()
            and (folder / "table.csv").is_file()
        )
    assert {"report.md", "report.json", "report.html", "runs.json"} <= {p.name for p in out.iterdir()}


def test_one_failure_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outcome = run(out, {"parity": fake("pass"), "convergence": fake("fail", x=3.0)}, "parity", "convergence")
    assert outcome.exit_code == 1 and runlog.run_markers(out) == ["_RUN_FAILED"]
    assert is_complete(out / "convergence" / "all")  # a completed, failing check is done work


def test_error_is_partial_not_stamped_and_retried(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outcome = run(out, {"parity": fake("pass"), "convergence": boom}, "parity", "convergence")
    assert outcome.exit_code == 1 and runlog.run_markers(out) == ["_RUN_PARTIAL"]
    folder = out / "convergence" / "all"
    assert not is_complete(folder) and "RuntimeError: no data" in (folder / "error.txt").read_text()
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "error" and result["messages"] == ["raised: RuntimeError: no data"]
    calls: list[str] = []
    outcome = run(
        out, {"parity": fake("pass", calls), "convergence": fake("pass", calls)}, "parity", "convergence"
    )
    assert calls == ["all"], "parity was done; only the errored check reruns"
    assert [e.resumed for e in outcome.entries] == [True, False]
    assert runlog.run_markers(out) == ["_RUN_SUCCESS"]


def test_missing_check_module_is_an_error_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from harness import registry

    broken = tuple(
        dataclasses.replace(c, module="harness.no_such_module") if c.name == "sbc" else c for c in registry.CHECKS
    )
    monkeypatch.setattr(registry, "CHECKS", broken)
    outcome = run(tmp_path / "out", {"parity": fake("pass")}, "parity", "sbc")
    sbc = next(e for e in outcome.entries if e.result.name == "sbc")
    assert (
        sbc.result.status == "error" and "No module named 'harness.no_such_module'" in sbc.result.messages[0]
    )
    assert outcome.marker == "_RUN_PARTIAL"


def test_resume_skips_stamped_work_of_the_same_suite_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    calls: list[str] = []
    run(out, {"parity": fake("fail", calls)}, "parity")
    run(out, {"parity": fake("fail", calls)}, "parity")
    assert calls == ["all"]
    run(out, {"parity": fake("fail", calls)}, "parity", suite="full")
    assert calls == ["all", "all"], "another suite is other work"
    result = json.loads((out / "parity" / "all" / "result.json").read_text())
    result["key"] = "stale"
    (out / "parity" / "all" / "result.json").write_text(json.dumps(result))
    run(out, {"parity": fake("fail", calls)}, "parity", suite="full")
    assert len(calls) == 3, "a result stored under another key is redone"
    run(out, {"parity": fake("fail", calls)}, "parity", suite="full")
    assert len(calls) == 3
    monkeypatch.setattr(runner, "source_digest", lambda paths: "other code")
    run(out, {"parity": fake("fail", calls)}, "parity", suite="full")
    assert len(calls) == 4, "a result made by other code is redone"


DEMO_CHECK = """
from harness.checks import CheckResult, gate_record, gates_of


def run_check(ctx):
    x = 0.25 if ctx.case == "a" else 0.5
    return CheckResult(name="demo", case=ctx.case, status="pass" if x <= 0.4 else "fail", figures={"x": x},
                       gates=gates_of(gate_record("x", "≤", 0.4, x, "units")))
"""


def _register_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check added the documented way: one module and one registry line (nothing else touched)."""
    from harness import registry

    write_text(tmp_path / "demo_check.py", DEMO_CHECK)
    monkeypatch.syspath_prepend(str(tmp_path))
    demo = registry.CheckSpec(
        "demo", "demo_check", "a stand-in added by a test", per_case=True, select=lambda s, c, n: ["b", "a"]
    )
    monkeypatch.setattr(registry, "CHECKS", (*registry.CHECKS, demo))


def test_a_stand_in_is_planned_on_its_own_cases(tmp_path: Path) -> None:
    from types import SimpleNamespace

    calls: list[str] = []
    check = SimpleNamespace(cases=lambda suite, catalog: ["b", "a"], run_check=fake("pass", calls))
    outcome = run(tmp_path / "out", {"parity": check}, "parity")
    assert calls == ["b", "a"] and [e.result.case for e in outcome.entries] == ["b", "a"]


def test_cases_are_planned_per_check_by_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register_demo(tmp_path, monkeypatch)
    outcome = run(tmp_path / "out", None, "demo")
    assert [e.result.case for e in outcome.entries] == ["b", "a"]
    assert [e.result.status for e in outcome.entries] == ["fail", "pass"]
    assert (tmp_path / "out" / "demo" / "a" / "_SUCCESS").is_file()
    assert all(e.result.duration_s > 0 for e in outcome.entries), "the runner times every check"


def test_a_check_added_in_a_test_shows_in_help_runs_and_gets_its_report_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _register_demo(tmp_path, monkeypatch)
    assert cli.main(["run", "--help"]) == 0
    assert "demo (a stand-in added by a test)" in " ".join(capsys.readouterr().out.split())
    out = tmp_path / "out"
    assert cli.main(["run", "--check", "demo", "--out", str(out)]) == 1
    doc = json.loads((out / "report.json").read_text())
    rows = {(r["name"], r["case"]): r for r in doc["checks"]}
    assert set(rows) == {("demo", "b"), ("demo", "a")}
    assert rows["demo", "b"]["gates"][0] | {"margin": 0} == {
        "figure": "x", "comparison": "≤", "bound": 0.4, "value": 0.5, "margin": 0, "unit": "units",
        "passed": False, "threshold": "≤ 0.4 units",
    }
    assert rows["demo", "b"]["gates"][0]["margin"] == pytest.approx(-0.1)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "demo" in md and "≤ 0.4 units" in md
    assert "demo" in html and "≤ 0.4 units" in html


def test_inventory_upsert_is_keyed_and_sorted(tmp_path: Path) -> None:
    rec = {"check": "parity", "case": "small", "config_hash": "h1", "status": "fail"}
    runlog.upsert_inventory(tmp_path, rec)
    runlog.upsert_inventory(tmp_path, {**rec, "case": "example"})
    runlog.upsert_inventory(tmp_path, {**rec, "status": "pass"})
    runlog.upsert_inventory(tmp_path, {**rec, "check": "convergence", "config_hash": "h0"})
    runs = runlog.read_inventory(tmp_path)
    assert [(r["check"], r["case"], r["status"]) for r in runs] == [
        ("convergence", "small", "fail"),
        ("parity", "example", "fail"),
        ("parity", "small", "pass"),
    ]
    with pytest.raises(ValueError, match="config_hash"):
        runlog.upsert_inventory(tmp_path, {"check": "parity", "case": "small"})


def test_report_summary_first_sections_and_sign_off(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(out, {"parity": fake("pass"), "convergence": fake("fail", x=3.0)}, "parity", "convergence")
    md = (out / "report.md").read_text().splitlines()
    assert md[0] == "# FUSION harness report — quick suite: FAILED"
    assert md[2] == "| check | case | status | headline figure | threshold | value | margin | duration (s) |"
    # failing rows first
    assert md[4].startswith("| convergence | all | FAIL | x | ≤ 1 | 3 | -2 |") and md[5].startswith("| parity | all | PASS |")
    assert "figure x 3.0 > 1 (over by 1)" in "\n".join(md)
    text = "\n".join(md)
    assert (
        text.index("## parity — all: PASS")
        < text.index("## convergence — all: FAIL")
        < text.index("## Sign-off")
    )
    assert "| Science owner |" in text and "| Release engineer |" in text
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["marker"] == "_RUN_FAILED"
    record = report["checks"][1]
    assert {"name", "case", "status", "figures", "thresholds", "duration_s", "plots", "provenance"} <= set(
        record
    )
    assert (record["name"], record["case"], record["status"], record["thresholds"]) == (
        "convergence",
        "all",
        "fail",
        {"x": "≤ 1"},
    )
    assert record["provenance"]["versions"]["numpy"]


def test_concurrent_run_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with (
        runlog.locked(out / runner.LOCK_FILE),
        pytest.raises(runner.BadInput, match="another harness run"),
    ):
        run(out, {"parity": fake("pass")}, "parity")


SCRIPT = """
import signal, sys, time
from pathlib import Path
from fusion.io import write_text
from harness import cli
from harness import runner
from harness.checks import CheckResult

def quick(ctx):
    write_text(ctx.artifact_dir / "table.csv", "x\\n")
    return CheckResult(name="parity", case=ctx.case, status="pass")

def slow(ctx):
    (ctx.artifact_dir / "partial.txt").write_text("half written")
    (ctx.artifact_dir / "started").write_text("")
    time.sleep(120)
    return CheckResult(name="convergence", case=ctx.case, status="pass")

signal.signal(signal.SIGTERM, cli._on_sigterm)
opts = runner.RunOptions(out=Path(sys.argv[1]), checks=("parity", "convergence"))
runner.run(opts, registry={"parity": quick, "convergence": slow})
"""


def _start_and_wait(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    started = out / "convergence" / "all" / "started"
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None, "the run ended before the slow check started"
        assert time.monotonic() < deadline, "the slow check never started"
        time.sleep(0.05)
    return proc, out


def test_killed_run_leaves_no_stamp_and_the_next_run_finishes(tmp_path: Path) -> None:
    proc, out = _start_and_wait(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert is_complete(out / "parity" / "all")
    assert not is_complete(out / "convergence" / "all"), (
        "the folder being written must not be stamped"
    )
    assert runlog.run_markers(out) == []
    calls: list[str] = []
    outcome = run(out, {"parity": fake("pass", calls), "convergence": fake("pass")}, "parity", "convergence")
    assert calls == [] and [e.resumed for e in outcome.entries] == [True, False]
    assert is_complete(out / "convergence" / "all")
    assert runlog.run_markers(out) == ["_RUN_SUCCESS"]


def test_sigterm_stops_in_order_with_a_partial_marker(tmp_path: Path) -> None:
    proc, out = _start_and_wait(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert runlog.run_markers(out) == ["_RUN_PARTIAL"]
    assert not is_complete(out / "convergence" / "all")
    result = json.loads((out / "convergence" / "all" / "result.json").read_text())
    assert result["status"] == "error" and result["messages"][0].startswith("interrupted: RunInterrupted")
    assert "INCOMPLETE" in (out / "report.md").read_text().splitlines()[0]


# --- CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--check", "nope"],
            "harness: --check: unknown check 'nope'; valid: parity, convergence, sbc, coverage, stability, agreement, adequacy, perfect_model, likelihood, drift",
        ),
        (["--suite", "huge"], "harness: --suite: unknown suite 'huge'; valid: quick, full"),
        (
            ["--scheduler", "not an address"],
            "harness: --scheduler: 'not an address' is not an address like tcp://host:8786",
        ),
        (["--bogus"], "harness: unrecognized arguments: --bogus"),
    ],
)
def test_cli_bad_input_one_line_exit_2_nothing_left(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["run", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err == expected + "\n"
    assert not out.exists()


def test_cli_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.txt"
    target.write_text("")
    assert cli.main(["run", "--out", str(target)]) == 2
    assert capsys.readouterr().err == f"harness: {target}: exists and is not a folder\n"


def test_cli_exit_codes_follow_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = {"parity": fake("pass"), "convergence": fake("pass")}
    monkeypatch.setattr(runner, "_load", lambda name, reg: registry[name])
    args = ["run", "--check", "parity", "--check", "convergence", "--scheduler", "tcp://127.0.0.1:8786"]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "harness: success (4 pass)" in capsys.readouterr().out, "parity on the 3 bundled cases, convergence on 1"
    registry["convergence"] = fake("fail")
    assert cli.main([*args, "--out", str(tmp_path / "b")]) == 1
    assert (
        json.loads((tmp_path / "b" / "report.json").read_text())["run"]["scheduler"] == "tcp://127.0.0.1:8786"
    )


def test_console_script_bad_input_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--check", "nope", "--out", str(tmp_path / "o")],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
