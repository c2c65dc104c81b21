"""The check registry is the one list: the CLI, the runner, case.yaml validation and the README read it;
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


def test_the_readme_documents_every_registered_check_and_how_to_add_one() -> None:
    readme = (repo_root() / "README.md").read_text()
    assert "### Adding a check" in readme
    for spec in registry.CHECKS:
        section = f"`{spec.gates}`" if spec.gates else "—"
        row = f"| `{spec.name}` | {spec.doc} | {'yes' if spec.per_case else 'no'} | {section} |"
        assert row in readme, f"README.md: no row {row}"


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
