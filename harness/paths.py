"""Where the sources and the checkout's data folders are: one answer for harness, tests and tools.

From a checkout (or an editable install) the folder holding the `fusion` and `harness`
packages is the repository root, with `golden/` and `fixtures/` beside them. From an
installed wheel it is `site-packages`: the package sources are there, the bundled data
folders are not, so only code that reads them needs a checkout.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["repo_root"]


def repo_root() -> Path:
    """The folder that holds the `fusion` and `harness` packages (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent
