"""Planted slowdowns that prove the comparison catches a regression (issue 24's acceptance).

`FUSION_BENCH_PLANT=kernel-sleep` puts a 50 µs sleep in the kernel's caller (busy:
it keeps the CPU, as extra work would, so CPU-time figures see it too) (`test_kernel`);
`FUSION_BENCH_PLANT=prepare-copy-F` makes `fusion prepare` keep a copy of every member's rate
fields (the full F before subsampling, float32, as the prototype holds it) in the benchmark's child
process. Nothing in `fusion/` knows about them: they wrap its functions from outside.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

ENV = "FUSION_BENCH_PLANT"
PLANTS = ("kernel-sleep", "prepare-copy-F")


def active() -> str | None:
    """The plant asked for by the environment, or None; an unknown name is an error, not a no-op."""
    name = os.environ.get(ENV) or None
    if name is not None and name not in PLANTS:
        raise SystemExit(f"{ENV}={name}: unknown plant; valid: {', '.join(PLANTS)}")
    return name


def kernel_caller(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """`kernel` itself, or with a sleep before every call under `kernel-sleep`."""
    if active() != "kernel-sleep":
        return kernel

    def slowed(*args: Any) -> Any:
        until = time.perf_counter() + 50e-6
        while time.perf_counter() < until:  # a sleep that keeps the CPU, as extra work would
            pass
        return kernel(*args)

    return slowed


def install_in_child() -> None:
    """Under `prepare-copy-F`, wrap `fusion.data.prepare._member_rates` so every rate field is copied and kept."""
    if active() != "prepare-copy-F":
        return
    import fusion.data.prepare as prepare

    original, kept = prepare._member_rates, {}

    def copying(member: Any, *args: Any, **kwargs: Any):
        for block, rate in original(member, *args, **kwargs):
            kept[(id(member), block)] = rate.copy()  # the extra copy of F, never freed (once per pass)
            yield block, rate

    prepare._member_rates = copying
