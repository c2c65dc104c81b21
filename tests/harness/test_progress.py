"""The replicate bar (tqdm's): rate and time left on a terminal, nothing in a log; hooked where replicates land."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import sim
from harness.progress import ReplicateBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bar_shows_count_rate_and_time_left_on_a_terminal() -> None:
    term, clock = Terminal(), Clock()
    bar = ReplicateBar("sbc generative", 100, done=20, stream=term, clock=clock, min_interval_s=0)
    clock.t += 5.0
    bar.update(30)  # 10 fitted in 5 s: 2.0/s, 70 left → 35 s
    last = term.getvalue().split("\r")[-1]
    assert last == "sbc generative [########....................] 30/100   2.00/s  00:35 left"
    clock.t += 35.0
    bar.update(100)
    bar.close()
    assert term.getvalue().endswith("[" + "#" * 28 + "] 100/100   2.00/s  00:00 left\n")


def test_bar_is_silent_when_stdout_is_not_a_terminal() -> None:
    log = io.StringIO()  # isatty() is False, as in CI
    bar = ReplicateBar("coverage", 10, stream=log, min_interval_s=0)
    wrapped_lines: list[str] = []
    line = bar.wrap(wrapped_lines.append)
    for k in range(1, 11):
        bar.update(k)
    line("coverage: 10/10 replicates (3.0/s)")
    bar.close()
    assert log.getvalue() == "" and wrapped_lines == ["coverage: 10/10 replicates (3.0/s)"]


def test_other_lines_clear_the_bar_then_redraw_it() -> None:
    term = Terminal()
    bar = ReplicateBar("sbc", 4, stream=term, min_interval_s=0)
    line = bar.wrap(lambda text: term.write(text + "\n"))
    bar.update(1)
    line("sbc: resuming")
    out = term.getvalue()
    cleared = "\r" + " " * len("sbc [#######.....................] 1/4   ?/s  ? left")  # tqdm blanks its row
    assert "\rsbc: resuming\n\rsbc [" in out and cleared in out  # the line starts on a cleared row, the bar follows it


@dataclass(frozen=True)
class _Spec:
    name: str = "toy"


def _task(spec: Any, chunk: list[int], cores: int) -> dict[str, Any]:
    return {
        "results": [{"index": i, "value": i * i} for i in chunk],
        "host": "here",
        "pid": 1,
        "compilations": 0,
    }


def test_run_replicates_draws_the_bar_as_replicates_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    lines: list[str] = []
    records, _stats, reused = sim.run_replicates(
        _task, _Spec(), 12, tmp_path, label="toy", workers=0, chunk_size=4, progress=lines.append
    )
    assert [r["value"] for r in records] == [i * i for i in range(12)] and reused == 0
    bars = [b for b in term.getvalue().split("\r") if b.startswith("toy [")]
    assert bars and bars[-1].startswith("toy [" + "#" * 28 + "] 12/12")
    # the last bar ends its line; tqdm pads it with blanks when its rate reads shorter than the one before
    assert bars[-1].endswith("\n") and bars[-1].rstrip("\n ").endswith("left")
    assert "toy: 12/12 replicates" in lines[-1]  # the log lines are still there
