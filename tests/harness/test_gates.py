"""The harness config file: thresholds per use, validated; a bad file is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.diagnostics import THRESHOLDS, Thresholds
from harness import cli
from harness import runner
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
        ("parity:\n  k: 1.0\n", "parity: unknown key(s) ['k']; valid: ['stat_k']"),
        ("stability:\n  max_sd: -0.1\n", "stability: max_sd: input should be greater than or equal to 0"),
        ("agreement:\n  sd_ratio_min: '0.5'\n", "agreement: sd_ratio_min: input should be a valid number"),
        ("sbc:\n  alpha: 2\n", "sbc: alpha: input should be less than 1"),
        ("sbc:\n  bogus: 1\n", "sbc: unknown key(s) ['bogus']; valid: ['alpha', 'borderline_e_bfmi'"),
        ("coverage: 3\n", "coverage must be a mapping"),
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


def test_gates_prints_a_file_run_config_accepts_back_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gates"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "g.yaml"
    path.write_text(text)
    assert load_gates(path) == Gates()
    assert cli.main(["gates", "--config", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == text.splitlines()[1:]  # the first line names the source
    for section in ("convergence", "sbc", "parity", "coverage", "stability", "agreement", "likelihood", "drift", "adequacy"):
        assert f"\n{section}:\n" in "\n" + text


# one tightened key per section: (section, key, tightened value, Gates attribute, check's gate function, passing figures)
def _tightened_cases() -> list[tuple[str, str, float]]:
    return [
        ("convergence", "r_hat_max", 1.001),
        ("sbc", "max_failed_fraction", 0.01),
        ("parity", "stat_k", 1.0),
        ("coverage", "max_calibration_error", 0.001),
        ("stability", "max_sd", 0.001),
        ("agreement", "weight_shift_sd_max", 0.5),
        ("likelihood", "alpha", 0.5),
        ("drift", "stat_k", 1.0),
        ("adequacy", "alpha", 0.5),
    ]


@pytest.mark.parametrize(("section", "key", "value"), _tightened_cases())
def test_one_threshold_tightened_in_the_printed_file_turns_its_gate_red(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, key: str, value: float
) -> None:
    import yaml

    from harness.checks.adequacy import adequacy_gates
    from harness.checks.agreement import agreement_gates
    from harness.checks.coverage import coverage_gates
    from harness.checks.drift import drift_gates
    from harness.checks.convergence import convergence_gates
    from harness.checks.likelihood import likelihood_gates
    from harness.checks.parity import parity_gates
    from harness.checks.sbc import SBCGate, sbc_gates
    from harness.checks.stability import stability_gates

    assert cli.main(["gates"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    data[section][key] = value
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(data))
    loose, tight = Gates(), load_gates(path)
    changed = {k for k in loose.as_dict() if loose.as_dict()[k] != tight.as_dict()[k]}
    assert changed == {section}
    # figures as the quick suite measures them (report.json of a passing run)
    gate_of = {
        "convergence": lambda g: convergence_gates(
            {"r_hat_max": 1.0063, "ess_bulk_per_chain_min": 275.0, "ess_tail_per_chain_min": 181.0,
             "divergences": 0, "e_bfmi_min": 0.66}, g.convergence),
        "sbc": lambda g: sbc_gates(
            {"rank_w": 0.14, "ecdf_inside_band": {"beta_vel": True}, "failed_fraction": 0.02},
            SBCGate(fit=g.sbc, alpha=g.sbc_ranks.alpha, max_failed_fraction=g.sbc_ranks.max_failed_fraction,
                    max_rank_w=g.sbc_ranks.max_rank_w)),
        # the statistical ratio is |Δ| / (k·√(...)): measured 0.344 at k = 4
        "parity": lambda g: parity_gates(
            {"statistical": {"passed": 0.344 * 4 / g.parity.stat_k <= 1, "max_ratio": 0.344 * 4 / g.parity.stat_k}},
            g.parity.stat_k),
        "coverage": lambda g: coverage_gates(
            {"generative": {"dense_clean": {"calibration_error": 0.004}},
             "physical": {"dense_clean": {"truth_first_fraction": 1.0}}}, g.coverage),
        "stability": lambda g: stability_gates({"max_sd": 0.0031}, g.stability.max_sd),
        "agreement": lambda g: agreement_gates(
            {"max_weight_shift_sd": 0.95, "sd_ratio_min": 0.91, "sd_ratio_max": 1.13}, g.agreement),
        # the quick suite gates the machinery only (reliability p measured 0.24)
        "likelihood": lambda g: likelihood_gates(
            {"independent": {"independent": {"calibrated": True, "members": {"reliability_p": 0.24}}}}, {},
            g.likelihood, full=False),
        # a fresh run against its baseline: the largest sampled |Δ| / √(mcse² + mcse²)
        "drift": lambda g: drift_gates({"setup_differences": 0, "deterministic_differing": 0, "max_z": 1.6}, g.drift),
        # the worst Bonferroni-adjusted p of a region or σ_obs bin: 0.31 measured on model-drawn data
        "adequacy": lambda g: adequacy_gates(
            {"streams": {"thick": {"ecdf_tails_excursion": 0.0, "worst_p": 0.31, "heldout_1sigma": 0.69,
                                   "heldout_2sigma": 0.96}}}, g.adequacy),
    }[section]
    assert all(g["passed"] for g in gate_of(loose))
    red = [g for g in gate_of(tight) if not g["passed"]]
    assert len(red) == 1 and (red[0]["bound"] == value or section == "parity"), red
