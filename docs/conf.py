"""Sphinx configuration of FUSION's documentation site (`./dev docs` builds it).

Why Sphinx with the PyData theme and MyST Markdown: it is the tooling of xarray, PyMC and
ArviZ, the projects FUSION's users already read, so the site looks and navigates as theirs do;
autodoc renders the API reference from the docstrings (numpydoc convention, as in those
projects), MyST lets every page stay plain Markdown that reads on GitHub too, and Sphinx's
nitpicky mode turns every unresolved cross-reference into a warning, which `./dev docs` makes
an error. The pages that must not drift are generated at build time by `_ext/fusion_docs.py`:
the configuration reference (from `fusion/config.py`'s models), the command-line reference
(from the CLIs' parsers) and the performance tables (from the saved benchmark JSON).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import fusion  # noqa: E402

project = "FUSION"
author = "the FUSION team"
copyright = "2026, the FUSION team"  # noqa: A001
release = version = fusion.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "fusion_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
nitpicky = True
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links are checked like any other reference

default_role = "literal"  # the docstrings' `name` is code, as in Markdown (not RST's italics)
autodoc_typehints = "none"  # numpydoc's Parameters section states the types
autodoc_member_order = "bysource"
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

doctest_global_setup = "import fusion"

html_theme = "pydata_sphinx_theme"
html_title = f"FUSION {release}"
html_static_path = ["_static"]
html_css_files = ["fusion.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    # the pages of wide generated tables get the right column's width too
    "secondary_sidebar_items": {"**": ["page-toc", "sourcelink"], "performance/index": [],
                                "development/measurement-log": [], "user-guide/likelihood": []},
}
html_last_updated_fmt = None
