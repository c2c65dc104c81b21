"""Import, on a background thread, the libraries a command needs only later.

`fusion run` spends about as long importing libraries as computing (`benchmarks/bench_run.py`
prints both). The stages that need dask (through xarray), nutpie, ArviZ's statistics and
`distributed` (through xarray's NetCDF writer) come after the config, the data and the masks, so their imports can start at once
on a second thread: while the main thread reads NetCDF files, works on arrays or waits for the
sampler's chains, which all leave the GIL free. An import that fails here is left for the
stage that needs it, which raises it where it means something.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable

__all__ = ["RUN", "WRITE", "import_all", "start", "wait"]


def _nutpie() -> None:
    from fusion.inference.sampling import import_nutpie

    import_nutpie()


#: What writing a run folder imports: xarray's NetCDF writer asks whether a dask `distributed`
#: client runs (which imports `distributed`).
WRITE: tuple[str, ...] = ("distributed",)
#: What `fusion run` imports after reading its inputs, in the order the stages need it: xarray
#: asks for dask on its first array, then come the sampler, the diagnostics and the writing
#: (Matplotlib is `fusion.worker`'s).
RUN: tuple[str | Callable[[], object], ...] = ("dask.array", _nutpie, "arviz_stats", *WRITE)


def import_all(modules: Iterable[str | Callable[[], object]]) -> None:
    """Import each of `modules` (names, or functions that import); failures are skipped."""
    for module in modules:
        if _CANCEL.is_set():
            return
        try:
            module() if callable(module) else importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the stage that needs it raises it with its context
            pass


_STARTED: list[threading.Thread] = []
_CANCEL = threading.Event()


def start(modules: Iterable[str | Callable[[], object]] = RUN) -> threading.Thread:
    """Start importing `modules` on a daemon thread; `wait()` before the process exits."""
    thread = threading.Thread(target=import_all, args=(tuple(modules),), name="fusion-warmup", daemon=True)
    thread.start()
    _STARTED.append(thread)
    return thread


def wait(*, cancel: bool = False) -> None:
    """Join every warm-up thread, so no import is half done when the interpreter shuts down
    (a module that registers exit handlers as it loads must not be caught midway).

    `cancel` skips the imports not yet begun: a command that stops early (bad input) then
    waits for one import at most, not for all of them.
    """
    if cancel:
        _CANCEL.set()
    try:
        while _STARTED:
            _STARTED.pop().join()
    finally:
        _CANCEL.clear()
