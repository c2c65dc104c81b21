"""The harness config file: thresholds per use, validated; a bad file is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.diagnostics import THRESHOLDS, Thresholds
from harness import cli, runner
from harness.gates import SBC_FIT, Gates, load_gates


def test_defaults_without_a_file_and_partial_sections_keep_the_rest(tmp_path: Path) -> None:
    assert load_gates(None) == Gates(THRESHOLDS, SBC_FIT)
    path = tmp_path / "gates.yaml"
    path.write_text("convergence:\n  r_hat_max: 1.02\nsbc:\n  e_bfmi_min: 0.25\n")
    gates = load_gates(path)
    assert gates.convergence == Thresholds(r_hat_max=1.02)
    assert gates.sbc.e_bfmi_min == 0.25 and gates.sbc.r_hat_max == SBC_FIT.r_hat_max


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("convergence:\n  rhat: 1.02\n", "convergence: unknown key(s) ['rhat']"),
        ("gate:\n  r_hat_max: 1.02\n", "unknown section(s) ['gate']"),
        ("convergence:\n  divergences_max: 0.5\n", "divergences_max must be a non-negative integer"),
        ("convergence: [1, 2]\n", "convergence must be a mapping"),
        ("convergence: {r_hat_max: 1.0\n", "malformed YAML"),
        ("sbc: {}\nconvergence: {}\nsbc: {r_hat_max: 1.1}\n", "duplicate key 'sbc' at line 3 (first at line 1)"),
        ("convergence:\n  r_hat_max: 1.02\n  r_hat_max: 1.03\n", "duplicate key 'convergence.r_hat_max' at line 3 (first at line 2)"),
    ],
)
def test_bad_config_is_one_line_naming_the_file_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert cli.main(["run", "--config", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"harness: {path}: ") and needle in err and "\n" not in err
    assert not out.exists()


def test_other_thresholds_do_not_reuse_stored_verdicts(tmp_path: Path) -> None:
    base = runner.RunOptions(out=tmp_path)
    strict = runner.RunOptions(out=tmp_path, gates=Gates(convergence=Thresholds(r_hat_max=1.005)))
    assert runner.fingerprint(base) != runner.fingerprint(strict)
    assert runner.fingerprint(base) == runner.fingerprint(runner.RunOptions(out=tmp_path))
