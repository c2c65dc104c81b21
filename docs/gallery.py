"""Redraw the documentation's gallery from a real run: `./dev python docs/gallery.py`.

Runs the bundled example as `./dev example` does (`fusion example`, then `fusion run` at its
config) and `harness run --check convergence` on the bundled cases, then copies what they drew
into `docs/_static/gallery/` (`run/`, `report/`) with `MANIFEST.json`: each picture's SHA-256,
and the SHA-256 of the report's template the screenshot shows.

Why committed pictures and a redraw test rather than drawing at build time: the README shows
one of them (GitHub renders it without a build), and a build that reruns the example would cost
the docs build half a minute. FUSION's runs are deterministic, so its figures are byte-for-byte
reproducible: `tests/test_docs_gallery.py` redraws them and fails when a committed one differs
(a stale gallery). The report's screenshot carries the run's time and paths, so it is judged by
the template it was rendered from instead.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fusion.io import write_bytes, write_json
from harness.paths import repo_root

REPO = repo_root()
GALLERY = REPO / "docs" / "_static" / "gallery"
TEMPLATE = REPO / "harness" / "report" / "templates" / "report.html.j2"
RUN_FIGURES = (
    "projection.png", "availability.png", "variogram.png", "sensitivity.png", "perfect_model.png", "residuals.png",
)  # fmt: skip
CHECK = "convergence"  # the report section shown: one check, about 20 s
REPORT_FIGURES = {"report.png": "report.png", "convergence.png": f"{CHECK}/small/{CHECK}.png"}
# pictures compared byte for byte with a fresh draw (the screenshot is judged by its template)
REPRODUCIBLE = tuple(f"run/{name}" for name in RUN_FIGURES) + ("report/convergence.png",)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tool(name: str) -> str:
    """The console script installed beside this interpreter (`.venv/bin/fusion`)."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def _step(what: str, args: list[str], cwd: Path) -> None:
    print(f"gallery: {what}", file=sys.stderr, flush=True)
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"gallery: {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def draw(work: Path, report: bool = True) -> dict[str, Path]:
    """Run the example (and, with `report`, one harness check) under `work`; the pictures by
    gallery name (`run/projection.png`, `report/report.png`, …)."""
    _step("fusion example", [_tool("fusion"), "example", str(work / "example")], work)
    _step("fusion run (the bundled example)",
          [_tool("fusion"), "run", str(work / "example" / "config.yaml"), "--out", str(work / "run")], work)
    pictures = {f"run/{name}": work / "run" / name for name in RUN_FIGURES}
    if report:
        _step(f"harness run --check {CHECK}",
              [_tool("harness"), "run", "--check", CHECK, "--out", str(work / "report")], work)
        pictures |= {f"report/{name}": work / "report" / source for name, source in REPORT_FIGURES.items()}
    missing = [str(p) for p in pictures.values() if not p.exists()]
    if missing:
        raise SystemExit(f"gallery: not drawn: {', '.join(missing)} (report.png needs headless Chromium)")
    return pictures


def manifest(pictures: dict[str, Path]) -> dict[str, object]:
    return {"pictures": {name: sha256(path) for name, path in sorted(pictures.items())},
            "report_template_sha256": sha256(TEMPLATE),
            "reproducible": list(REPRODUCIBLE),
            "command": "./dev python docs/gallery.py"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=GALLERY, help="gallery folder (default: docs/_static/gallery)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fusion-gallery-") as tmp:
        pictures = draw(Path(tmp))
        for name, path in pictures.items():
            write_bytes(args.out / name, path.read_bytes())
        write_json(args.out / "MANIFEST.json", manifest(pictures))
    print(f"gallery: {len(pictures)} pictures → {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
