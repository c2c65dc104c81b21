"""`harness signoff OUT_DIR --name NAME --decision approve|reject [--note TEXT]`.

A release is signed off by people on a finished run: the record (name, decision, note, UTC
time, the run's fingerprint) is appended to `OUT_DIR/signoff.json` under the run folder's
lock, written atomically, and `report.md` and `report.html` are re-rendered from
`report.json` so both show it. A folder without a run marker is refused, and so is an
approval of a run that is not `_RUN_SUCCESS` (a rejection of any finished run is allowed).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from fusion.io import write_json
from harness.report.records import read_document
from harness.report.write import SIGNOFF_FILE, read_signoffs, rerender
from harness.runlog import LOCK_FILE, RUN_MARKERS, locked, run_markers  # no sign-off while a run writes

__all__ = ["DECISIONS", "SignoffRefused", "sign"]

DECISIONS: tuple[str, ...] = ("approve", "reject")


class SignoffRefused(ValueError):
    """The folder or the decision cannot be recorded; the CLI prints it on one line (exit 2)."""


def _finished(out: Path) -> str:
    markers = run_markers(out)
    if not markers:
        raise SignoffRefused(
            f"{out}: no run marker ({', '.join(RUN_MARKERS)}); not a finished harness run"
        )
    return markers[0]


def sign(out: Path, name: str, decision: str, note: str | None = None) -> dict[str, Any]:
    """Append one sign-off to `signoff.json`, re-render both reports, return the record."""
    out = Path(out)
    if not out.is_dir():
        raise SignoffRefused(f"{out}: not a folder")
    if decision not in DECISIONS:
        raise SignoffRefused(f"--decision: {decision!r}; valid: {', '.join(DECISIONS)}")
    if not name.strip():
        raise SignoffRefused("--name: empty")
    _finished(out)  # before taking the lock, so a stray folder is left untouched
    try:
        with locked(out / LOCK_FILE, blocking=False):
            marker = _finished(out)
            if decision == "approve" and marker != "_RUN_SUCCESS":
                raise SignoffRefused(
                    f"{out}: cannot approve a run marked {marker}; only _RUN_SUCCESS can be approved"
                )
            try:
                doc = read_document(out)
            except (OSError, ValueError) as exc:
                raise SignoffRefused(f"{out / 'report.json'}: unreadable ({type(exc).__name__})") from None
            record = {
                "name": name.strip(),
                "decision": decision,
                "note": note or "",
                "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "fingerprint": doc["run"]["fingerprint"],
                "marker": marker,
            }
            try:
                signoffs = read_signoffs(out)
            except ValueError as exc:  # names the file and what is wrong with it
                raise SignoffRefused(str(exc)) from None
            except OSError as exc:
                raise SignoffRefused(f"{out / SIGNOFF_FILE}: unreadable ({exc.strerror})") from None
            write_json(out / SIGNOFF_FILE, {"signoffs": [*signoffs, record]})
            rerender(out, doc)
    except BlockingIOError:
        raise SignoffRefused(f"{out}: a harness run is writing to this folder") from None
    return record
