"""A second process for `fusion run`: the figures (Matplotlib) and the convergence figures (ArviZ).

A short `fusion run` spends more CPU importing libraries than computing, and its main process
works on one core (the GIL) while the other idles outside sampling. Two stages need large
libraries and nothing of the run but its small results: the figures (Matplotlib, about 0.45 s
to import, then 0.4 s of drawing) and the convergence diagnostics (`arviz_stats` with SciPy's
`stats`, about 0.5 s to import, 10 ms of work). `RunWorker` spawns one process as the run
starts; it imports both while the main process loads data and samples (GSTools first when
the run estimates the residuals' spatial correlation: `likelihood.form: effective`, the default
under `compat: fixed`, needs it before sampling), estimates that correlation, draws
`availability.png` as soon as the data are prepared and `variogram.png` as soon as the
correlation is known; once the draws exist it computes the diagnostics, the calibration's CRPS
with `perfect_model.png` as soon as the main process has chosen the member temperatures, and
the posterior predictive check (`fit.json`, `residuals.png`) from the PITs the main process
computed meanwhile; it draws `sensitivity.png` as soon as the main process has its table, and
`projection.png` while the main process writes its other files. After the draws this queue is
the run's critical path, so the main process takes what needs none of the worker's libraries
(the PITs: NumPy and SciPy's special functions). The worker runs the same functions
(`fusion.figures`, `fusion.figures.likelihood`, `fusion.figures.calibration`,
`fusion.figures.adequacy`, `fusion.diagnostics.diagnose_draws`) on the same data, so the
results are those the main process would compute, byte for byte. (Measured with `benchmarks/bench_run.py`:
a thread importing the same libraries in the main process only contends for the GIL.)

If the worker is gone (killed, or it failed to start), every call runs in this process
instead: no output depends on the worker. An error inside a call is raised here, as it would
be in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import xarray as xr

    from fusion.data.availability import Availability

__all__ = ["RunWorker"]


def _ready() -> bool:
    return True

T = TypeVar("T")


def _start(correlation: bool) -> None:
    """The worker's initializer: Ctrl-C is the main process's to handle (it ends the worker);
    BLAS on one thread (unless the user chose a count): this process shares the machine with
    the run's sampling, its products are small, and OpenBLAS's idle threads spin-wait after
    each one (measured: 0.2–0.4 s of CPU per run, the same bits); with `correlation`, GSTools
    first, as the correlation estimate is the first task and `likelihood.form: effective` waits
    for it before sampling. (0.6 s of CPU: GSTools' `__init__` imports every subpackage, emcee
    and hankel with them, so no narrower import of its variogram and covariance modules exists;
    most of it is SciPy modules this process loads anyway, emcee and hankel alone 0.05 s.)"""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # OpenBLAS reads it as it loads, later here
    if correlation:
        import gstools  # noqa: F401

        import fusion.data.correlation  # noqa: F401 - the estimate's own modules, ready when the data arrive
        import fusion.inference.likelihood  # noqa: F401


def _warm() -> None:
    """The imports drawing and diagnosing need, before the first task asks for them."""
    from fusion.diagnostics import import_statistics
    from fusion.figures import import_plotting

    import_plotting()
    import scipy.spatial  # noqa: F401 - the posterior predictive check's pair sums (fusion.adequacy)

    import fusion.figures.adequacy  # noqa: F401
    import_statistics()


def _exit_now() -> None:
    """End the worker without interpreter finalization (0.3 s with Matplotlib loaded): it has
    written its files atomically and returned its results, so nothing is left to flush."""
    import os

    os._exit(0)


class RunWorker:
    """One spawned process (standard library pool; `spawn`: never fork a process that runs threads)."""

    def __init__(self, *, correlation: bool = False) -> None:
        """`correlation`: the run will ask `correlate` first (its imports come first, the
        plotting and statistics imports queue behind that task instead of before it)."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
            initargs=(correlation,),
        )  # fmt: skip
        self._submit(_ready)  # the pool starts its process at the first task: start it now
        self._warmed = False
        if not correlation:
            self._warm()
        #: figures begun before `draw_figures`: file → (the inputs drawn, the pending bytes)
        self._begun: dict[str, tuple[dict[str, Any], Future[bytes] | None]] = {}

    def _warm(self) -> None:
        """Queue the plotting and statistics imports (once), ahead of the tasks that need them."""
        if not self._warmed:
            self._warmed = True
            self._submit(_warm)

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T] | None:
        try:
            return self._pool.submit(fn, *args)
        except RuntimeError:  # the pool is broken or shut down: the caller runs `fn` here
            return None

    def _result(self, future: Future[T] | None, fn: Callable[..., T], *args: Any) -> T:
        """`future`'s result; `fn(*args)` in this process if the worker could not run it."""
        from concurrent.futures.process import BrokenProcessPool

        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool:
                pass
        return fn(*args)

    def begin_figures(self, availability: Availability | None) -> None:
        """Start drawing `availability.png` now (it needs the prepared data only)."""
        from fusion.figures import availability_png

        self._warm()
        pending = self._submit(availability_png, availability)
        self._begun["availability.png"] = ({"availability": availability}, pending)

    def begin_likelihood_figures(self, summary: dict[str, Any], names: Sequence[str] | None = None) -> None:
        """Start drawing `names` of `SUMMARY_FIGURES` (default all) from summary.json's entries
        given, each known before the projection is (`variogram.png` before the chains sample,
        `sensitivity.png` after them); one begun on the very same entries is not drawn again."""
        from fusion.figures.likelihood import SUMMARY_FIGURES, summary_png

        self._warm()
        for name in SUMMARY_FIGURES if names is None else names:
            parts = {key: summary[key] for key in SUMMARY_FIGURES[name].reads if key in summary}
            if not self._begun_on(name, parts):
                self._begun[name] = (parts, self._submit(summary_png, name, parts))

    def _begun_on(self, name: str, parts: dict[str, Any]) -> bool:
        """`name` was begun on these very inputs (the same objects, not equal copies)."""
        early, pending = self._begun.get(name, (None, None))
        return (pending is not None and early is not None and early.keys() == parts.keys()
                and all(early[k] is v for k, v in parts.items()))  # fmt: skip

    def draw_figures(
        self,
        projection: xr.Dataset,
        summary: dict[str, Any],
        availability: Availability | None,
        folder: str | Path,
    ) -> Callable[[], None]:
        """Start `fusion.figures.draw_figures` in the worker (`availability.png` and the figures of
        `SUMMARY_FIGURES` from `begin_figures`, `begin_likelihood_figures` and `start_calibration`
        where they were begun on the same inputs); returns the function that waits for every file."""
        from fusion.figures import availability_png, draw_projection
        from fusion.figures.likelihood import SUMMARY_FIGURES, summary_png
        from fusion.io import write_bytes

        folder = Path(folder)
        self._warm()
        projection_done = self._submit(draw_projection, projection, summary, folder)
        if not self._begun_on("availability.png", {"availability": availability}):
            self.begin_figures(availability)
        pending = self._begun["availability.png"][1]
        self.begin_likelihood_figures(summary)
        figures = {name: self._begun[name] for name in SUMMARY_FIGURES}

        waited = False

        def wait() -> None:
            """Every file written (the second call returns at once)."""
            nonlocal waited
            if waited:
                return
            waited = True
            write_bytes(folder / "availability.png", self._result(pending, availability_png, availability))
            for name, (parts, png) in figures.items():
                write_bytes(folder / name, self._result(png, summary_png, name, parts))
            self._result(projection_done, draw_projection, projection, summary, folder)

        return wait

    def diagnose(self, trace: xr.DataTree, var_names: Sequence[str] | None = None) -> dict[str, Any]:
        """`fusion.diagnostics.diagnose(trace, var_names)`, computed in the worker."""
        return self.start_diagnose(trace, var_names)()

    def start_diagnose(self, trace: xr.DataTree, var_names: Sequence[str] | None = None) -> Callable[[], dict[str, Any]]:
        """Start `diagnose` in the worker; returns the function that waits for its result."""
        from fusion.diagnostics import diagnose_draws, diagnose_inputs

        inputs = diagnose_inputs(trace, var_names)
        self._warm()
        future = self._submit(diagnose_draws, *inputs)
        return lambda: self._result(future, diagnose_draws, *inputs)

    def correlate(self, prepared: Any, correlation_length: str | float, seed: int) -> Callable[[], Any]:
        """Start `fusion.inference.likelihood.stream_correlations` in the worker (GSTools and
        SciPy's `stats` are imported there); returns the function that waits for its result."""
        import functools

        from fusion.inference.likelihood import stream_correlations

        job = functools.partial(stream_correlations, seed=seed)
        future = self._submit(job, prepared, correlation_length)
        self._warm()  # behind the estimate
        return lambda: self._result(future, job, prepared, correlation_length)

    def start_calibration(self, calibration: Any, sle: Any) -> Callable[[], dict[str, Any]]:
        """Start `fusion.figures.calibration.calibration_outputs` in the worker: summary.json's
        `calibration` (its CRPS needs ArviZ's statistics, loaded there) and `perfect_model.png`
        drawn from it at once; returns the function that waits for the record (`draw_figures`
        then keeps the figure for that very record)."""
        from fusion.figures.calibration import calibration_outputs

        future = self._submit(calibration_outputs, calibration, sle)

        def record() -> dict[str, Any]:
            done, png = self._result(future, calibration_outputs, calibration, sle)
            drawn: Future[bytes] = Future()
            drawn.set_result(png)
            self._begun["perfect_model.png"] = ({"calibration": done}, drawn)
            return done

        return record

    def fit_outputs(self, *args: Any) -> Callable[[], tuple[dict[str, Any], bytes]]:
        """Start `fusion.figures.adequacy.fit_outputs(*args)` (fit.json's record, residuals.png's
        bytes; the PITs among `args` when the caller computed them) in the worker; returns the
        function that waits for them."""
        from fusion.figures.adequacy import fit_outputs

        future = self._submit(fit_outputs, *args)
        return lambda: self._result(future, fit_outputs, *args)

    def close(self) -> None:
        """Let what was asked finish, then end the worker at once (see `_exit_now`)."""
        self._submit(_exit_now)
        self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        """End the worker now, dropping what it was asked: for a run that stopped (bad input,
        Ctrl-C), whose figures will not be written, rather than waiting out its imports."""
        kill = getattr(self._pool, "kill_workers", None)  # Python >= 3.14
        if kill is not None:
            kill()
        else:
            for process in list((self._pool._processes or {}).values()):  # noqa: SLF001
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RunWorker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close() if exc_type is None else self.abandon()
