"""The documentation build fails on a broken reference, and the README stays a short entry point.

The build test runs `docs/build.py` (what `./dev docs` runs) on a two-page project made of the
real `conf.py` and `_ext/` (about 5 s): the page's good references resolve and each planted one
fails, with nothing else reported.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from harness.paths import repo_root

DOCS = repo_root() / "docs"
CLEAN = "# A page\n\nSee [the start](index.md) and [its heading](index.md#a-site).\n"


def _site(tmp_path: Path, page: str) -> Path:
    """docs/conf.py and docs/_ext/ with an index and one page."""
    src = tmp_path / "src"
    shutil.copytree(DOCS / "_ext", src / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(DOCS / "conf.py", src / "conf.py")
    (src / "_static").mkdir()
    shutil.copy(DOCS / "_static" / "fusion.css", src / "_static")
    (src / "index.md").write_text("# A site\n\n```{toctree}\n\npage\n```\n")
    (src / "page.md").write_text(page)
    return src


def _build(tmp_path: Path, page: str) -> subprocess.CompletedProcess:
    src = _site(tmp_path, page)
    return subprocess.run([sys.executable, str(DOCS / "build.py"), "--source", str(src), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)


PLANTS = {  # a broken reference of each kind, and the name its error line must carry
    "See {ref}`a-label-nobody-wrote`.": "a-label-nobody-wrote",
    "See [a page](no-such-page.md).": "no-such-page",
    "See [a heading](index.md#no-such-heading).": "no-such-heading",
    "See {py:func}`fusion.no_such_function`.": "fusion.no_such_function",
}


def test_a_broken_reference_planted_in_a_page_fails_the_build(tmp_path: Path) -> None:
    """All four in one page beside good references: `--keep-going` reports every one, and
    nothing else, before the build fails (so the page is otherwise clean)."""
    done = _build(tmp_path, CLEAN + "\n" + "\n\n".join(PLANTS) + "\n")
    assert done.returncode != 0
    assert [name for name in PLANTS.values() if name not in done.stderr] == [], done.stderr
    unplanted = [line for line in done.stderr.splitlines()
                 if "WARNING:" in line and not any(name in line for name in PLANTS.values())]
    assert unplanted == []
    assert (tmp_path / "out" / "html" / "page.html").is_file()  # the page was built, its references failed


def _ext() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fusion_docs", DOCS / "_ext" / "fusion_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    """What the built HTML links to: the check behind the Sphinx references (raw HTML, a theme's links)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text('<h1 id="top">x</h1><a href="sub/page.html#here">ok</a>'
                                         '<a href="sub/page.html#gone">bad anchor</a><a href="#top">ok</a>'
                                         '<a href="https://example.org/x.html">external</a><img src="nope.png">')
    (tmp_path / "sub" / "page.html").write_text('<p id="here">x</p><a href="../index.html">ok</a><a href="../missing.html">bad</a>')
    assert _ext().broken_internal_links(tmp_path) == [
        "index.html: sub/page.html#gone (no such anchor)",
        "index.html: nope.png (no such file)",
        "sub/page.html: ../missing.html (no such file)",
    ]


def test_the_config_reference_lists_every_key_of_the_models() -> None:
    from fusion.config import Config

    text = "\n".join(_ext().config_reference_markdown())
    for key in ("compat", "observations.thickness.dir", "inference.subsample.seed", "likelihood.form",
                "observations.regrid.min_valid_fraction", "cache.dir"):
        assert f"| `{key}` |" in text, key
    assert "| `inference.draws` | integer | `500` | > 0 |" in text
    assert "absent: a grid mismatch is bad input" in text  # the comment beside the key in config.py
    assert len(re.findall(r"^\| `", text, re.M)) == sum(1 for _ in _every_key(Config))


def _every_key(model: type, prefix: str = ""):
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        yield prefix + name
        for tp in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                yield from _every_key(tp, f"{prefix}{name}.")


def test_readme_is_short_and_its_links_resolve() -> None:
    readme = (repo_root() / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert "docs/user-guide/data.md" in links  # "point it at my data": one click from the README
    missing = [link for link in links if "://" not in link and not (repo_root() / link).exists()]
    assert missing == []


def test_ci_runs_the_readmes_test_command_and_builds_the_docs() -> None:
    readme = (repo_root() / "README.md").read_text()
    ci = [line.strip() for line in (repo_root() / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    test_command = re.search(r"^(\./dev test)\s+#", readme, re.M).group(1)
    assert test_command in ci and "./dev docs" in ci
