"""PyTensor compiles FUSION's graphs without `fastmath`, in this process and in its children.

Applied by `fusion.inference.pymc_model` as it builds a model, the first step towards any
PyTensor graph of FUSION's, never on import: importing a FUSION module leaves the environment
alone (tests/test_import_side_effects.py).
"""

from __future__ import annotations

import os
import sys

__all__ = ["strict_pytensor_float"]


def strict_pytensor_float() -> None:
    """Compile PyTensor graphs without `fastmath`, here and in every sampler child process.

    PyTensor's Numba backend turns on `reassoc`, `afn`, `arcp` by default. A graph compiled
    fresh and the same graph loaded from PyTensor's cache then regroup sums differently:
    measured on the SBC graph, a cold cache and a warm cache gave different draws for the same
    seed, and with the flag off they agree bit for bit. The environment variable carries the
    setting into processes PyMC and the harness spawn, and into PyTensor itself when it is
    imported later (`fusion run` with nutpie never imports it: 0.1 s saved). An explicit
    `numba__fastmath` in `PYTENSOR_FLAGS` is left alone.
    """
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "numba__fastmath" in flags:
        return
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, "numba__fastmath=False"]))
    if "pytensor" in sys.modules:  # imported before FUSION: its config has read the flags already
        sys.modules["pytensor"].config.numba__fastmath = False
