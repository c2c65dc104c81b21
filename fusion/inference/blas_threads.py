"""One BLAS thread for FUSION's own products, set at the cost of a context switch, not a library scan.

`threadpoolctl.threadpool_limits` looks up every loaded shared library each time it is entered
(about 1 ms with Numba, SciPy and nutpie loaded); a controller made once keeps what it found.
NumPy's BLAS is loaded with NumPy, before any of FUSION's products, so the controller made on
first use always holds the library those products call. Libraries loaded after it (another
package's own BLAS) are not limited by it: code that calls into them takes `threadpool_limits`.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["one_blas_thread"]


@functools.cache
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> Any:
    """A context in which NumPy's BLAS runs on one thread (restored on exit)."""
    return _controller().limit(limits=1, user_api="blas")
