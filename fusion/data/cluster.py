"""`prepare`'s row blocks on a dask.distributed cluster (`--scheduler ADDR`), as the harness's SBC.

The work of one block of grid rows is a function of small arguments: the config, the inputs'
paths and times, the rows. It goes to the workers once (`scatter`), each task names only its
rows, and each worker reads its own rows from the files and hands back what the client
combines (a mask of the block, counts, the chosen points). Memory on the client and on every
worker stays set by the block, and results are placed by block position, so the order they
land in changes no bit. Workers must see the same paths as the client (a shared filesystem,
or a LocalCluster); remote inputs are read through `cache.dir`, which must be shared too.

A malformed address, an unknown scheme, a scheduler that does not answer or one without
workers is bad input: one line, exit 2.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fusion.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT_S", "check_scheduler", "connect", "map_blocks", "worker_peak_rss_mb"]

CONNECT_TIMEOUT_S: float = 10.0  # to reach the scheduler and to find a worker on it
IN_FLIGHT_PER_THREAD: int = 2  # tasks queued per worker thread: results do not pile up on the workers


def _problem(address: str, why: str) -> InputError:
    return InputError(None, f"--scheduler {address}: {why}")


def check_scheduler(address: str, timeout: float | None = None) -> None:
    """Check the address's form and, for `tcp://`, that something listens there, before a Client
    is made: a Client that fails to connect leaves a half-made object whose teardown prints
    tracebacks, so a plain socket answers the common cases (refused, unresolvable, silent).
    The CLI calls it first, so a bad address fails before any input is read."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address, strict=True)
        get_backend(scheme)
        if scheme != "tcp":
            return
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise _problem(address, f"not a dask scheduler address ({exc}); expected e.g. tcp://host:8786") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise _problem(address, f"cannot reach the dask scheduler ({reason})") from None


@contextlib.contextmanager
def connect(address: str, timeout: float | None = None) -> Iterator[Client]:
    """A client of the scheduler at `address` with at least one worker, closed on leaving."""
    from distributed import Client

    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    check_scheduler(address, timeout)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError, TimeoutError) as exc:
        raise _problem(address, f"cannot connect to the dask scheduler ({str(exc).splitlines()[0]})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise _problem(address, f"the scheduler has no workers (none joined within {timeout:g} s)") from None
        yield client
    finally:
        client.close()


def map_blocks(
    client: Client | None, fn: Callable[..., Any], shared: Any, per_block: Sequence[tuple[Any, ...]]
) -> Iterator[tuple[int, Any]]:
    """(index, `fn(shared, *per_block[index])`) for every block: here in order when `client` is
    None, else on the cluster in completion order, `shared` sent to each worker once and a few
    tasks per worker thread in flight at a time."""
    if client is None:
        for i, args in enumerate(per_block):
            yield i, fn(shared, *args)
        return
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    if not per_block:
        return
    common = client.scatter(shared, broadcast=True, hash=False)
    threads = sum(client.nthreads().values()) or 1
    pending = iter(enumerate(per_block))
    live: dict[str, tuple[Any, int]] = {}  # future key: (future, block index)

    def submit(i: int, args: tuple[Any, ...]) -> Any:
        future = client.submit(fn, common, *args, pure=False)
        live[future.key] = (future, i)
        return future

    first = [submit(i, a) for i, a in itertools.islice(pending, IN_FLIGHT_PER_THREAD * threads)]
    queue = as_completed(first, loop=client.loop)
    try:
        for future in queue:
            try:
                result = future.result()  # a worker's InputError is raised here, whole
            except (KilledWorker, CommClosedError, FutureCancelledError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(None, f"--scheduler {client.scheduler.address}: the cluster lost a worker or "
                                       f"the scheduler during prepare ({reason})") from None
            _, i = live.pop(future.key)
            future.release()
            for nxt in itertools.islice(pending, 1):
                queue.add(submit(*nxt))
            yield i, result
    finally:
        client.cancel([f for f, _ in live.values()])
        common.release()


def worker_peak_rss_mb(client: Client) -> dict[str, float]:
    """Peak resident memory of every worker process since it started, MB (for the benchmarks)."""
    return {addr: kb / 1024 for addr, kb in client.run(_peak_rss_kb).items()}


def _peak_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
