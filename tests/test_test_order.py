"""The root conftest's order of the modules under `./dev test` (xdist workers hand them out in
collection order): the ones marked `long_module(seconds=…)` first, longest first, then the others
by their number of tests."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from harness.paths import repo_root


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", repo_root() / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class _Item:
    nodeid: str
    seconds: float | None = None  # the module's `long_module(seconds=…)`, if marked

    def get_closest_marker(self, name: str) -> object | None:
        return pytest.mark.long_module(seconds=self.seconds).mark if name == "long_module" and self.seconds else None


def _items() -> list[_Item]:
    return [
        _Item("a.py::t1"), _Item("a.py::t2"),
        _Item("b.py::t1"), _Item("b.py::t2"), _Item("b.py::t3"),
        _Item("slow.py::t1", 30), _Item("slow.py::t2", 30),
        _Item("c.py::t1"),
        _Item("slowest.py::t1", 90),
    ]  # fmt: skip


def test_a_worker_takes_the_long_modules_first_longest_first_then_the_largest() -> None:
    items = _items()
    _root_conftest().pytest_collection_modifyitems(SimpleNamespace(workerinput={}), items)
    assert [i.nodeid for i in items] == [
        "slowest.py::t1", "slow.py::t1", "slow.py::t2",
        "b.py::t1", "b.py::t2", "b.py::t3", "a.py::t1", "a.py::t2", "c.py::t1",
    ]  # fmt: skip


def test_a_plain_run_keeps_the_collection_order() -> None:
    items = _items()
    _root_conftest().pytest_collection_modifyitems(SimpleNamespace(), items)
    assert [i.nodeid for i in items] == [i.nodeid for i in _items()]
