"""Helpers for tests of FUSION and of the harness, importable as a module (not from a conftest).

The harness's acceptance tests (`harness/release_tests/`) and the unit tests (`tests/`) share the
checkout's data folders and one way to build a bundled case once per session; conftest files
keep only fixtures and hooks and take what they need from here.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from pathlib import Path

from typing import Any, Literal

from harness.cases import bundled_case

from harness.cases.data import CaseData
from harness.checks import CheckContext
from harness.paths import repo_root

__all__ = ["REPO", "GOLDEN_DIR", "FIXTURES_DIR", "case_data_cache", "check_context", "planted_default"]

REPO = repo_root()
GOLDEN_DIR = REPO / "golden"
FIXTURES_DIR = REPO / "fixtures"


def case_data_cache(workdir: Path) -> Callable[[str], CaseData]:
    """`get(name)`: one `CaseData` per bundled case, built on first use (the example is written under `workdir`)."""
    cache: dict[str, CaseData] = {}

    def get(name: str) -> CaseData:
        if name not in cache:
            cache[name] = CaseData(bundled_case(name, GOLDEN_DIR, FIXTURES_DIR, workdir))
        return cache[name]

    return get


def check_context(artifact_dir: Path, suite: Literal["quick", "full"] = "quick", **fields: Any) -> CheckContext:
    """A quiet `CheckContext` over the checkout's bundled cases, writing into `artifact_dir`;
    `fields` set any other field (`case`, `gates`, ...)."""
    return CheckContext(
        suite=suite, artifact_dir=artifact_dir, golden_dir=GOLDEN_DIR, fixtures_dir=FIXTURES_DIR,
        progress=lambda _: None, **fields,
    )


@contextlib.contextmanager
def planted_default(key: str, value: Any) -> Iterator[None]:
    """A new FUSION release, as far as its config defaults go: the default of `key` (a dotted
    config key, e.g. `inference.velocity_inflation`) is `value` inside the block, for every config
    loaded there that does not set the key itself. The models are restored on exit."""
    from fusion.config import Config

    names = key.split(".")
    chain = [Config]  # the model holding each name, outermost first
    for name in names[:-1]:
        chain.append(chain[-1].__pydantic_fields__[name].annotation)
    saved = [(model, name, model.__pydantic_fields__[name]) for model, name in zip(chain, names, strict=True)]

    def set_default(model: Any, name: str, default: Any) -> None:
        info = copy.copy(model.__pydantic_fields__[name])
        info.default = default
        model.__pydantic_fields__[name] = info
        model.model_rebuild(force=True)

    try:
        set_default(chain[-1], names[-1], value)
        for model, name in reversed(list(zip(chain[:-1], names[:-1], strict=True))):  # section defaults anew
            set_default(model, name, model.__pydantic_fields__[name].annotation())
        yield
    finally:
        for model, name, info in reversed(saved):
            model.__pydantic_fields__[name] = info
            model.model_rebuild(force=True)
