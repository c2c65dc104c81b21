"""Which saved benchmark runs were taken on "the same machine" as this one.

A time compares with another only when the two machines would run the same code at the same
speed. The fields that decide it, from pytest-benchmark's `machine_info`:

- `cpu.brand_raw`: the CPU model (micro-architecture and nominal clock set the speed);
- `cpu.count`: the cores (the suite's parallel parts, local workers and clusters, scale with it);
- `python_implementation` and `python_version` to major.minor: interpreter speed changes
  between minor releases (3.11's, 3.12's), not between patch releases.

Everything else differs between two fresh VMs of one CPU and says nothing about speed: the
kernel release, the hostname (`node`), a CPU flag the hypervisor exposes or hides, the measured
clock's last digits (`hz_actual`), the Python build date. pytest-benchmark compares the whole
`machine_info` and warns on any difference, which the repository's `filterwarnings = error`
turns into an INTERNALERROR; `compare.py` therefore makes the comparison itself (this module)
and never asks pytest-benchmark to load a baseline.

Shared by `compare.py` (the verdict) and `tables.py` (README's tables): neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.paths import repo_root

__all__ = ["STORAGE", "baseline_for", "baselines_for", "describe", "machine_key", "saved_runs", "this_machine"]

STORAGE = repo_root() / "benchmarks" / "baselines"


def machine_key(machine_info: dict[str, Any]) -> tuple[str, int | None, str, str]:
    """(CPU model, cores, Python implementation, Python major.minor): equal keys, same machine."""
    cpu = machine_info.get("cpu", {})
    version = str(machine_info.get("python_version", ""))
    return (
        str(cpu.get("brand_raw", "unknown")),
        cpu.get("count"),
        str(machine_info.get("python_implementation", "")),
        ".".join(version.split(".")[:2]),
    )


def describe(key: tuple[str, int | None, str, str]) -> str:
    """The key as one phrase, for messages."""
    cpu, count, implementation, version = key
    return f"{cpu}, {count} CPUs, {implementation or 'Python'} {version}".replace("  ", " ")


def this_machine() -> dict[str, Any]:
    """This machine's `machine_info` as pytest-benchmark records it (the fields `machine_key` reads)."""
    import platform

    import cpuinfo

    info = cpuinfo.get_cpu_info()
    return {
        "cpu": {"brand_raw": info.get("brand_raw", "unknown"), "count": info.get("count")},
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
    }


def saved_runs(storage: Path = STORAGE) -> list[Path]:
    """Every saved run under `storage`, oldest first (pytest-benchmark numbers them)."""
    return sorted(storage.rglob("*.json"))


def baselines_for(machine_info: dict[str, Any], runs: list[Path] | None = None) -> list[Path]:
    """The saved baselines taken on the same machine as `machine_info` (`machine_key`), oldest first."""
    key = machine_key(machine_info)
    return [
        path for path in (runs if runs is not None else saved_runs())
        if "_baseline" in path.name and machine_key(json.loads(path.read_text())["machine_info"]) == key
    ]


def baseline_for(machine_info: dict[str, Any], runs: list[Path] | None = None) -> Path | None:
    """The newest baseline taken on the same machine, or None."""
    found = baselines_for(machine_info, runs)
    return found[-1] if found else None
