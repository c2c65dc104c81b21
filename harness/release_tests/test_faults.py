"""Planted faults: each must turn exactly its own check red, with a message that names the fault.

The runner runs the parity check (on the `subsample` reference case: bit-exact parts only,
about a second) and the convergence check (small case; its trace is shared with
test_convergence.py) exactly as `harness run` does; a fault is planted, and the test reads
which check went red and what it said. A check that cannot fail is a defect, so the
clean run is asserted green first.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import xarray as xr

from harness.checks import convergence

from harness.checks import parity

from harness import runner
from harness.checks import CheckResult
from harness.testing import FIXTURES_DIR, GOLDEN_DIR

FAULT_CASE = "subsample"


def run_checks(
    out: Path, golden_dir: Path = GOLDEN_DIR, fixtures_dir: Path = FIXTURES_DIR
) -> tuple[runner.RunOutcome, dict[str, CheckResult]]:
    registry = {
        "parity": SimpleNamespace(cases=lambda *a: [FAULT_CASE], run_check=parity.run_check),
        "convergence": SimpleNamespace(cases=lambda *a: ["small"], run_check=convergence.run_check),
    }
    options = runner.RunOptions(
        out=out, checks=("parity", "convergence"), golden_dir=golden_dir, fixtures_dir=fixtures_dir
    )
    outcome = runner.run(options, registry=registry, progress=lambda line: None)
    return outcome, {e.result.name: e.result for e in outcome.entries}


def red_components(result: CheckResult) -> set[str]:
    return {k for k, v in result.figures.items() if isinstance(v, dict) and v.get("passed") is False}


def assert_only_parity_red(outcome: runner.RunOutcome, results: dict[str, CheckResult]) -> None:
    assert results["parity"].status == "fail", results["parity"].messages
    assert results["convergence"].status == "pass", results["convergence"].messages
    assert outcome.marker == "_RUN_FAILED" and outcome.exit_code == 1


def _with_prototype_fault(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """Wrap FUSION's `prepare` so that only `compat: prototype` output is altered by `change`."""
    import fusion.data.prepare as prepare_module

    original = prepare_module.prepare

    def faulty(cfg: Any, data: Any) -> Any:
        prepared = original(cfg, data)
        return change(prepared) if cfg.compat == "prototype" else prepared

    monkeypatch.setattr(prepare_module, "prepare", faulty)


def test_clean_run_is_green(tmp_path: Path) -> None:
    outcome, results = run_checks(tmp_path / "out")
    assert {r.status for r in results.values()} == {"pass"}, {k: r.messages for k, r in results.items()}
    assert outcome.marker == "_RUN_SUCCESS" and outcome.exit_code == 0


def test_one_ulp_in_a_prepared_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def nudge(p: Any) -> Any:
        F = p.F.copy()
        F[2, 17] = np.nextafter(F[2, 17], np.inf)
        return dataclasses.replace(p, F=F)

    _with_prototype_fault(monkeypatch, nudge)
    outcome, results = run_checks(tmp_path / "out")
    assert_only_parity_red(outcome, results)
    message = next(m for m in results["parity"].messages if m.startswith("prepared: F:"))
    assert "1 of 120000 values differ; first at F[2, 17]" in message and message.endswith("1 ULP apart"), (
        message
    )
    assert not any(
        m.startswith(("prepared: y_obs", "prepared: sigma_obs", "prepared: speed"))
        for m in results["parity"].messages
    )
    assert "prepared" in red_components(results["parity"])
    assert "plugin_weights" not in red_components(results["parity"])  # the weights step alone is still exact


def test_mis_scaled_loglik(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The raw sum instead of the mean over points: weights collapse onto one member."""
    from fusion.inference import plugin

    original = plugin.plug_in_weights

    def raw_sum(prepared: Any, posterior: Any) -> tuple[np.ndarray, np.ndarray]:
        _, loglik = original(prepared, posterior)
        raw = loglik * prepared.n_points
        w = np.exp(raw - raw.max())
        return w / w.sum(), raw

    monkeypatch.setattr(plugin, "plug_in_weights", raw_sum)
    outcome, results = run_checks(tmp_path / "out")
    assert_only_parity_red(outcome, results)
    messages = results["parity"].messages
    assert any(
        m.startswith("plugin_weights: golden/subsample/model_weights_table.csv: run1.log_likelihood: obtained")
        for m in messages
    ), messages
    assert {"plugin_weights", "pipeline_weights", "golden_tables"} <= red_components(results["parity"])
    assert "prepared" not in red_components(results["parity"])


def test_swapped_member_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def swap(p: Any) -> Any:
        ids = list(p.member_ids)
        ids[0], ids[1] = ids[1], ids[0]
        return dataclasses.replace(p, member_ids=tuple(ids))

    _with_prototype_fault(monkeypatch, swap)
    outcome, results = run_checks(tmp_path / "out")
    assert_only_parity_red(outcome, results)
    messages = results["parity"].messages
    assert any(
        m.startswith("prepared: member order differs at position 0: run2 vs expected run1") for m in messages
    )
    assert any("row order by 'member_id' differs: row 0 is run2, golden run1" in m for m in messages), (
        messages
    )


def test_hand_edited_golden_table(tmp_path: Path) -> None:
    # the bundled cases' case.yaml point at ../../../golden/<case>: copy both trees side by side
    golden = shutil.copytree(GOLDEN_DIR, tmp_path / "golden")
    fixtures = shutil.copytree(FIXTURES_DIR, tmp_path / "fixtures")
    table = golden / FAULT_CASE / "tables" / "weights.csv"
    lines = table.read_text().splitlines()
    member, weight, loglik = lines[3].split(",")
    edited = weight[:-1] + str((int(weight[-1]) + 1) % 10)
    lines[3] = f"{member},{edited},{loglik}"
    table.write_text("\n".join(lines) + "\n")

    outcome, results = run_checks(tmp_path / "out", golden_dir=golden, fixtures_dir=fixtures)
    assert_only_parity_red(outcome, results)
    assert red_components(results["parity"]) == {"golden_tables"}
    expected = (
        f"golden_tables: golden/{FAULT_CASE}/tables/weights.csv: "
        f"{member}.weight: obtained {weight} vs golden {float(edited)!r} (1 ULP), bit-exact"
    )
    assert any(m.startswith(expected) for m in results["parity"].messages), results["parity"].messages


def _diverging_run(cfg: Any, prepared: Any) -> xr.DataTree:
    """A real NUTS run that diverges: Neal's funnel, short adaptation, low target acceptance."""
    import pymc as pm

    with pm.Model():
        v = pm.Normal("v", 0.0, 3.0)
        pm.Normal("x", 0.0, pm.math.exp(v / 2), shape=9)
        raw = pm.sample(
            draws=200,
            tune=100,
            chains=2,
            cores=1,
            random_seed=1,
            nuts={"target_accept": 0.6},
            nuts_sampler="pymc",
            progressbar=False,
            compute_convergence_checks=False,
        )
    return xr.DataTree.from_dict({g: raw[g].to_dataset() for g in ("posterior", "sample_stats")})


def test_diverging_sampler_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convergence, "sample_trace", _diverging_run)
    outcome, results = run_checks(tmp_path / "out")
    assert results["convergence"].status == "fail"
    assert results["parity"].status == "pass", results["parity"].messages
    assert outcome.marker == "_RUN_FAILED" and outcome.exit_code == 1
    messages = results["convergence"].messages
    diverged = results["convergence"].figures["divergences"]  # 2 with PyTensor's strict float, 5 with fastmath
    assert diverged > 0
    line = f"{diverged} divergent transitions > 0 ({100 * diverged / 400:.2f}% of 400 draws)"
    assert line in messages, messages
    assert len(results["convergence"].figures["attempts"]) == 1  # a divergence is never borderline
