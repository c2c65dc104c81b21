"""The documentation's gallery is what FUSION draws today (`./dev python docs/gallery.py` redraws it).

The redraw runs the bundled example and one harness check (about a minute on 2 cores), so it is
behind the `full` marker; the default run checks what needs no drawing: the committed pictures
are the manifest's, every figure `fusion run` writes is in the gallery and on its page, and the
report's screenshot was taken of today's template.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from harness.paths import repo_root

GALLERY = repo_root() / "docs" / "_static" / "gallery"
REGENERATE = "stale gallery: run ./dev python docs/gallery.py, look at the pictures and commit them"


def _gallery() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_gallery", repo_root() / "docs" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest() -> dict:
    return json.loads((GALLERY / "MANIFEST.json").read_text())


def test_committed_pictures_are_the_manifests() -> None:
    gallery = _gallery()
    pictures = _manifest()["pictures"]
    on_disk = sorted(str(p.relative_to(GALLERY)) for p in GALLERY.rglob("*.png"))
    assert on_disk == sorted(pictures)
    assert {name: gallery.sha256(GALLERY / name) for name in pictures} == pictures, REGENERATE


def test_every_figure_of_a_run_is_in_the_gallery_and_on_its_page() -> None:
    from fusion.cli import RUN_OUTPUTS

    drawn = set(re.findall(r"(\w+\.png)", RUN_OUTPUTS))
    assert drawn and drawn == set(_gallery().RUN_FIGURES), "fusion run draws a figure the gallery lacks"
    page = (repo_root() / "docs" / "gallery.md").read_text()
    for name in _manifest()["pictures"]:
        assert f"(_static/gallery/{name})" in page, f"docs/gallery.md does not show {name}"


def test_the_report_screenshot_was_taken_of_todays_template() -> None:
    """The screenshot carries the run's time and paths, so it is judged by the page's template."""
    assert _gallery().sha256(_gallery().TEMPLATE) == _manifest()["report_template_sha256"], REGENERATE


@pytest.mark.full
def test_a_fresh_draw_gives_the_committed_pictures(tmp_path: Path) -> None:
    gallery = _gallery()
    fresh = gallery.draw(tmp_path)
    committed = _manifest()["pictures"]
    stale = [name for name in gallery.REPRODUCIBLE if gallery.sha256(fresh[name]) != committed[name]]
    assert stale == [], f"{', '.join(stale)}: {REGENERATE}"
