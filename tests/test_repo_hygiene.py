"""One repository-root helper; compiled graphs leave no file in the system temporary folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fusion
import harness
from harness.paths import repo_root


def test_repo_root_holds_both_packages_and_the_checkout_folders() -> None:
    root = repo_root()
    assert root == Path(fusion.__file__).resolve().parent.parent == Path(harness.__file__).resolve().parent.parent
    assert (root / "golden").is_dir() and (root / "fixtures").is_dir()  # the tests run from a checkout


def test_no_module_finds_the_root_on_its_own() -> None:
    """`Path(__file__)....parents[n]` copies drift apart when a file moves; `repo_root` is the one answer."""
    pattern = re.compile(r"__file__\)\.resolve\(\)\.(parents\[\d+\]|parent\.parent)")
    offenders = [
        str(path.relative_to(repo_root()))
        for folder in ("fusion", "harness", "tests", "benchmarks")
        for path in sorted((repo_root() / folder).rglob("*.py"))
        if path.name != "paths.py" and path != Path(__file__).resolve() and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_generated_graph_source_goes_under_pytests_base_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    from pytensor.link.utils import write_generated_src

    written = Path(write_generated_src("answer = 42\n"))
    assert written.is_file()
    assert tmp_path_factory.getbasetemp() in written.parents  # removed with it after a passing run


def test_every_yaml_file_is_read_by_the_one_reader() -> None:
    """The FUSION config, case.yaml and the harness thresholds go through `fusion.yamlfile`
    (duplicate keys refused, dates kept as text); a second loader would bring back "the last wins"."""
    pattern = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all)\(|\bSafeLoader\b")
    offenders = [
        str(path.relative_to(repo_root()))
        for folder in ("fusion", "harness", "benchmarks")
        for path in sorted((repo_root() / folder).rglob("*.py"))
        if path.name != "yamlfile.py" and pattern.search(path.read_text())
    ]
    assert offenders == []
