"""The check registry is the one list: the CLI, the runner, case.yaml validation and the docs read it;
`harness run` loads neither syrupy nor pytest."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from harness import registry
from harness.cases import PER_CASE_CHECKS
from harness.checks import CHECK_NAMES
from harness.paths import repo_root


def test_every_registered_check_has_a_module_with_run_check() -> None:
    assert registry.names() == CHECK_NAMES == ("parity", "convergence", "sbc", "coverage", "stability", "agreement", "adequacy", "perfect_model", "likelihood", "drift")
    for spec in registry.CHECKS:
        assert callable(importlib.import_module(spec.module).run_check), spec.name
        assert spec.doc and set(spec.suites) <= set(registry.SUITES)


def test_case_yaml_accepts_exactly_the_per_case_checks() -> None:
    assert PER_CASE_CHECKS == registry.per_case_names() == ("parity", "convergence", "stability", "agreement", "adequacy", "perfect_model", "drift")


def test_the_docs_document_every_registered_check_and_how_to_add_one() -> None:
    """The checks table of docs/harness/checks.md is generated from the registry at build time
    (`{harness-checks}`); each check also needs its own section there."""
    docs = repo_root() / "docs" / "harness"
    page = (docs / "checks.md").read_text()
    assert "```{harness-checks}" in page
    for spec in registry.CHECKS:
        assert f"\n## {spec.name}\n" in page, f"docs/harness/checks.md: no section '## {spec.name}'"
    assert "registry.py" in (docs / "adding-a-check.md").read_text()


def test_harness_run_loads_neither_syrupy_nor_pytest(tmp_path: Path) -> None:
    """A real run (stability, the cheapest check that fits) plus every check module imported."""
    code = (
        "import importlib, json, sys\n"
        "from harness import cli, registry\n"
        f"code = cli.main(['run', '--check', 'stability', '--out', {str(tmp_path / 'out')!r}])\n"
        "for spec in registry.CHECKS: importlib.import_module(spec.module)\n"
        "print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in ('syrupy', 'pytest', '_pytest'))]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root(), timeout=600, check=False
    )
    code, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert code == 0, proc.stdout + proc.stderr
    assert "harness" in proc.stdout and (tmp_path / "out" / "report.json").is_file()
    assert loaded == []
