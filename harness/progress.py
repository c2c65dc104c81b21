"""A progress bar for replicates (SBC, coverage): count, rate and time remaining, on a terminal only.

The bar is tqdm's (one line redrawn in place, at most every `min_interval_s`). A person waiting
at a terminal sees it; CI logs (stdout not a terminal) get nothing from it — tqdm is disabled
there, and the harness's own per-check and every-10% lines still say how far a run is. Other
progress lines printed while the bar is shown go through `wrap` (tqdm's `external_write_mode`:
the bar is cleared, the line let through, the bar redrawn), so the two never garble.
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
        from tqdm import tqdm

        self.label, self.total = label, total
        self.stream = stream if stream is not None else sys.stdout
        self.active = bool(getattr(self.stream, "isatty", lambda: False)()) and total > 0
        self._bar = tqdm(
            total=total,
            initial=done,
            desc=label,
            file=self.stream,
            disable=not self.active,
            mininterval=min_interval_s,
            miniters=1,
            smoothing=0,  # rate = replicates fitted in this run / time since the bar started
            ascii=".#",
            bar_format=_FORMAT,
            unit="",
            dynamic_ncols=False,
            leave=True,
            delay=0,
        )
        if self.active:  # tqdm reads its clock through `_time`; the tests step a fake clock
            self._bar._time = clock  # type: ignore[attr-defined]
            self._bar.start_t = self._bar.last_print_t = clock()

    def text(self) -> str:
        """The bar's current line (tqdm's rendering of `_FORMAT`); empty when inactive."""
        return str(self._bar) if self.active else ""

    def update(self, done: int) -> None:
        if self.active and done != self._bar.n:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self.active:
            self._bar.close()

    def wrap(self, progress: Callable[[str], None]) -> Callable[[str], None]:
        """`progress` that clears the bar before its line and redraws the bar after it."""

        def line(text: str) -> None:
            if not self.active:
                progress(text)
                return
            with self._bar.external_write_mode(file=self.stream):
                progress(text)

        return line
