"""Build the documentation site as CI does: `./dev docs` runs this.

    ./dev docs                      # docs/ → docs/_build/html, then the doctests
    ./dev docs --source DIR --out DIR

Warnings are errors (`-W --keep-going`: every problem listed, then exit 1), cross-references
are nitpicky (`-n`: a reference to a page, label or API name that does not exist fails), and
after the HTML build every internal link and anchor of the built pages is checked
(`_ext/fusion_docs.py`). Then the doctest builder runs the examples of the pages and
docstrings, reusing the parsed pages (the same doctree folder), so it adds seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sphinx.cmd.build import build_main

DOCS = Path(__file__).resolve().parent


def build(source: Path, out: Path) -> int:
    """Exit status of the HTML build, else of the doctests (0: both clean)."""
    common = ["-W", "--keep-going", "-n", "-q", "-d", str(out / "doctrees"), str(source)]
    for builder in ("html", "doctest"):
        start = time.perf_counter()
        status = build_main(["-b", builder, *common, str(out / builder)])
        print(f"docs: {builder} {'ok' if status == 0 else 'FAILED'} in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
        if status:
            return status
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DOCS, help="the documentation sources (default: docs/)")
    ap.add_argument("--out", type=Path, default=DOCS / "_build", help="build folder (default: docs/_build)")
    args = ap.parse_args(argv)
    status = build(args.source, args.out)
    if status == 0:
        print(f"docs: {args.out / 'html' / 'index.html'}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
