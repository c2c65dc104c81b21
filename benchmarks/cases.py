"""The benchmark cases generated once into a cache folder outside the repository (`benchmarks/conftest.py`'s
fixtures and the scripts share them: a module, since nothing imports from a conftest)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["prepare_case"]


def prepare_case(cache_dir: Path, n: int, members: int, compat: str) -> Path:
    """An n × n grid, 2014–2020, `members` members (no projection files) and its config; generated once."""
    from fusion.data.synthetic import SyntheticSpec, generate

    root = cache_dir / (f"prepare-{n}x{n}x{members}" + ("" if compat == "prototype" else f"-{compat}"))
    config = root / "config.yaml"
    if not config.exists():
        generate(root, SyntheticSpec(ny=n, nx=n, members=members, years=(2014, 2020), with_projection=False))
        config.write_text(
            f"compat: {compat}\nobservations: {{thickness: {{dir: obs/elev}}, velocity: {{dir: obs/vel}}}}\n"
            "ensemble: {dir: ensemble}\n"
        )
    return config
