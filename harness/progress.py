"""A progress bar for replicates (SBC, coverage): count, rate and time remaining, on a terminal only.

A person waiting at a terminal sees one line redrawn in place; CI logs (stdout not a
terminal) get nothing from it — the harness's own per-check and every-10% lines still say
how far a run is. Other progress lines printed while the bar is shown go through `wrap`,
which clears the bar, lets the line through and redraws it, so the two never garble.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ReplicateBar"]


class ReplicateBar:
    """`update(done)` as replicates land; `close()` ends the line. Silent unless `stream` is a terminal."""

    width = 28

    def __init__(
        self,
        label: str,
        total: int,
        *,
        done: int = 0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = 0.2,
    ) -> None:
        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stdout
        self.active = bool(getattr(self.stream, "isatty", lambda: False)()) and total > 0
        self._clock, self._min_interval = clock, min_interval_s
        self._start_done, self._start = done, clock()
        self._done, self._drawn_at, self._shown = done, -float("inf"), False

    def text(self) -> str:
        """`label [#####.....] 40/200  3.1/s  0:52 left` (rate over the replicates fitted in this run)."""
        frac = self._done / self.total if self.total else 1.0
        filled = round(frac * self.width)
        elapsed = self._clock() - self._start
        fitted = self._done - self._start_done
        rate = fitted / elapsed if elapsed > 0 and fitted > 0 else 0.0
        if self._done >= self.total:
            left = "done"
        elif rate > 0:
            secs = round((self.total - self._done) / rate)
            left = f"{secs // 60}:{secs % 60:02d} left"
        else:
            left = "estimating"
        return (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{self._done}/{self.total}  {rate:.1f}/s  {left}"
        )

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if self.active and (now - self._drawn_at >= self._min_interval or done >= self.total):
            self.stream.write("\r\x1b[K" + self.text())
            self.stream.flush()
            self._drawn_at, self._shown = now, True

    def close(self) -> None:
        if self.active and self._shown:
            self.stream.write("\r\x1b[K" + self.text() + "\n")
            self.stream.flush()
            self._shown = False

    def wrap(self, progress: Callable[[str], None]) -> Callable[[str], None]:
        """`progress` that clears the bar before its line and redraws the bar after it."""

        def line(text: str) -> None:
            if self.active and self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            progress(text)
            if self.active and self._shown:
                self.stream.write(self.text())
                self.stream.flush()

        return line
