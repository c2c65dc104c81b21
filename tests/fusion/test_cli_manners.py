"""CLI manners: `--version` from the package metadata, every option's help states its default,
`fusion run --help` lists what it writes, sampling progress only on a terminal."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusion import cli as fusion_cli
from harness import cli as harness_cli

VERSION = importlib.metadata.version("fusion")


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """Every option of the parser and of its subcommands, as (command, action)."""
    out: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(f"{name} {a.dest}", a) for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        elif not isinstance(action, argparse._HelpAction) and "--version" not in action.option_strings:
            out.append((action.dest, action))
    return out


@pytest.mark.parametrize("main", [fusion_cli.main, harness_cli.main], ids=["fusion", "harness"])
def test_version_prints_the_installed_version_and_exits_0(main, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["--version"])
    except SystemExit as exc:  # argparse's version action exits
        code = exc.code
    assert code == 0
    prog = "fusion" if main is fusion_cli.main else "harness"
    assert capsys.readouterr().out.strip() == f"{prog} {VERSION}"


def test_console_exits_with_mains_status_and_flushed_output(tmp_path: Path) -> None:
    """`fusion`'s entry point skips interpreter teardown; what `main` printed still arrives, and
    its exit status is the process's, whether stdout is a pipe or a file (block-buffered)."""
    listing = tmp_path / "help.txt"
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as on a user's machine
    with listing.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "fusion.cli", "example", str(tmp_path / "ex")],
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=120, env=buffered)
    assert proc.returncode == 0, proc.stderr
    assert listing.read_text().startswith("example dataset and config written: ")
    bad = subprocess.run([sys.executable, "-m", "fusion.cli", "run", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.yaml'}: config file not found"]


@pytest.mark.parametrize("script", ["fusion", "harness"])
def test_console_scripts_print_the_version(script: str) -> None:
    exe = Path(sys.executable).with_name(script)
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{script} {VERSION}"


@pytest.mark.parametrize("parser", [fusion_cli._parser, harness_cli._parser], ids=["fusion", "harness"])
def test_every_option_says_what_it_does_and_its_default(parser) -> None:
    options = _options(parser())
    assert len(options) >= 4
    for name, action in options:
        assert action.help and len(action.help) > 15, f"{name}: no help"
        if action.option_strings:  # positionals have no default to state
            assert "default" in action.help, f"{name}: help does not state the default: {action.help!r}"


def test_run_help_lists_every_output(capsys: pytest.CaptureFixture[str]) -> None:
    from fusion.io import SUCCESS
    from fusion.pipeline import OUTPUT_FILES

    with pytest.raises(SystemExit) as exc:
        fusion_cli.main(["run", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    listed = [line.split()[0] for line in text.split("writes into the output folder", 1)[1].splitlines()[1:] if line]
    assert set(OUTPUT_FILES) | {SUCCESS} <= set(listed), listed
    assert listed[-1] == SUCCESS  # named last, as it is written last


@pytest.mark.parametrize(("flags", "tty", "expected"), [
    ([], True, True), ([], False, False), (["--no-progress"], True, False), (["--progress"], False, True),
])
def test_progress_follows_the_terminal_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: list[str], tty: bool, expected: bool
) -> None:
    seen: dict[str, bool] = {}

    def fake_run_to_dir(config, out, *, progressbar, worker=None, **how):  # noqa: ANN001, ANN003
        seen["progressbar"] = progressbar
        return tmp_path

    import fusion.pipeline

    monkeypatch.setattr(fusion.pipeline, "run_to_dir", fake_run_to_dir)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    config = tmp_path / "config.yaml"  # read before the (faked) run: a bad config fails first
    config.write_text("observations: {thickness: {dir: obs/elev}, velocity: {dir: obs/vel}}\nensemble: {dir: ensemble}\n")
    assert fusion_cli.main(["run", str(config), *flags]) == 0
    assert seen == {"progressbar": expected}


def test_ctrl_c_is_one_line_and_status_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    """An interrupted command says so in one line (no traceback) and exits as shells expect."""
    import fusion.pipeline

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fusion.pipeline, "run_to_dir", interrupted)
    config = tmp_path / "config.yaml"
    config.write_text("observations: {thickness: {dir: obs/elev}, velocity: {dir: obs/vel}}\nensemble: {dir: ensemble}\n")
    assert fusion_cli.main(["run", str(config)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted: fusion run stopped")


def test_run_prints_the_projection_in_one_line() -> None:
    """`fusion run` ends with the answer a terminal user wants: median and range of the weighted
    SLE, and which member weighting gave it (summary.json's own figures)."""
    summary = {"median": 209.634, "lower": 79.5596, "upper": 209.634, "lower_q": 0.05, "upper_q": 0.95,
               "target_year": 2100.0, "units": "mm"}
    assert fusion_cli.projection_line(summary) == "SLE in 2100: median 209.6 mm, 5%–95% range 79.6–209.6 mm"
    calibrated = {**summary, "calibration": {"method": "perfect_model", "temperature": {"thick": 0.0178, "vel": 0.00178},
                                             "confident": False}}
    assert fusion_cli.projection_line(calibrated).endswith(
        "(member weights calibrated by perfect_model: λ_thick 0.0178, λ_vel 0.00178; no confident temperature)"
    )
