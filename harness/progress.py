"""A progress bar for replicates (SBC, coverage): count, rate and time remaining, on a terminal only.

The line is tqdm's (`tqdm.format_meter`, its public formatter), redrawn in place at most every
`min_interval_s` on the clock the bar is given. A person waiting at a terminal sees it; CI logs
(stdout not a terminal) get nothing from it, and the harness's own per-check and every-10% lines
still say how far a run is. Other progress lines printed while the bar is shown go through
`wrap` (the bar's row is blanked, the line let through, the bar redrawn), so the two never garble.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ReplicateBar"]

#: `label [#####.....] 40/200  3.1/s  00:52 left`; the rate is over the replicates fitted in this run
_FORMAT = "{desc} [{bar:28}] {n_fmt}/{total_fmt}  {rate_noinv_fmt}  {remaining} left"


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
        self.clock, self.min_interval_s = clock, min_interval_s
        self.initial = self.done = done
        self.start = self.drawn_at = clock()
        self.shown = ""  # the line on the terminal's current row
        if self.active:
            self._draw()

    def text(self) -> str:
        """The bar's current line; empty when inactive."""
        if not self.active:
            return ""
        from tqdm import tqdm

        return tqdm.format_meter(
            self.done, self.total, self.clock() - self.start, prefix=self.label, ascii=".#",
            unit="", bar_format=_FORMAT, initial=self.initial,
        )  # fmt: skip

    def _draw(self) -> None:
        line = self.text()
        self.stream.write("\r" + line + " " * max(len(self.shown) - len(line), 0))
        self.stream.flush()
        self.shown, self.drawn_at = line, self.clock()

    def update(self, done: int) -> None:
        if self.active and done != self.done:
            self.done = done
            if done >= self.total or self.clock() - self.drawn_at >= self.min_interval_s:
                self._draw()

    def close(self) -> None:
        if self.active:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.active = False

    def wrap(self, progress: Callable[[str], None]) -> Callable[[str], None]:
        """`progress` that blanks the bar's row before its line and redraws the bar after it."""

        def line(text: str) -> None:
            if not self.active:
                progress(text)
                return
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.shown = ""
            progress(text)
            self._draw()

        return line
