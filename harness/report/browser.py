"""Headless Chromium with the network off: the report page as a person's browser renders it.

Used by `harness run`/`harness signoff` to keep a screenshot of `report.html` as `report.png`
(when a Chromium is installed) and by the tests that check the page renders. Each call gets a
fresh profile folder, a dead proxy (`127.0.0.1:9`) and no background services, so nothing
is fetched from anywhere; the page's own Content-Security-Policy forbids it as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from fusion.io import atomic_path

__all__ = ["INSTALL_HINT", "BrowserError", "dump_dom", "find_chromium", "screenshot"]

INSTALL_HINT = (
    "install Debian's chromium: apt-get update && apt-get install -y chromium (or set HARNESS_CHROMIUM)"
)
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",  # network off: every request goes to a closed port
    "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    """Chromium is missing or did not produce its output."""


def find_chromium() -> str | None:
    """`HARNESS_CHROMIUM`, else the first Chromium on PATH."""
    override = os.environ.get("HARNESS_CHROMIUM")
    if override:
        return override if shutil.which(override) else None
    return next((found for name in _NAMES if (found := shutil.which(name))), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    exe = find_chromium()
    if exe is None:
        raise BrowserError(f"no Chromium found; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
        cmd = [exe, *_FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise BrowserError(f"chromium exited {proc.returncode}: {tail[0]}")
    return proc


def dump_dom(page: Path, *, timeout: float = 60) -> str:
    """The DOM after the page loaded (scripts in the page, if any, have run)."""
    return _run(["--dump-dom", Path(page).resolve().as_uri()], timeout).stdout.decode()


def screenshot(page: Path, png: Path, *, size: tuple[int, int] = (1280, 2400), timeout: float = 60) -> Path:
    """A PNG of the page's first `size` pixels, written atomically to `png`."""
    with atomic_path(png, suffix=".png") as tmp:
        _run(
            [f"--window-size={size[0]},{size[1]}", f"--screenshot={tmp}", Path(page).resolve().as_uri()],
            timeout,
        )
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise BrowserError(f"chromium wrote no screenshot of {page}")
    return Path(png)
