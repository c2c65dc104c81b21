"""`harness.result_store`: a result folder is reused only when complete and made under the same key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from fusion.io import SUCCESS, read_json
from harness import result_store as store
from harness.sim.store import load_replicates, save_replicate


@dataclass(frozen=True)
class Spec:
    n: int = 3
    scale: float = 1.0


def test_key_depends_on_spec_and_code() -> None:
    key = store.result_key(Spec(), "code-a")
    assert key == store.result_key({"n": 3, "scale": 1.0}, "code-a")  # a dataclass keys as its fields
    assert key != store.result_key(Spec(n=4), "code-a")
    assert key != store.result_key(Spec(), "code-b")


def test_only_a_stamped_folder_with_the_same_key_is_reused(tmp_path: Path) -> None:
    folder = tmp_path / "parity" / "all"
    assert store.load_result(folder, "k1") is None
    store.save_result(folder, {"status": "pass"}, "k1")
    assert store.load_result(folder, "k1") == {"status": "pass", "key": "k1"}
    assert store.load_result(folder, "k2") is None, "another spec or other code"
    store.save_result(folder, {"status": "error"}, "k1", complete=False)
    assert not (folder / SUCCESS).exists() and read_json(folder / store.RESULT_FILE)["status"] == "error"
    assert store.load_result(folder, "k1") is None, "an unfinished result is redone"
    store.save_result(folder, {"status": "pass"}, "k1")
    (folder / store.RESULT_FILE).write_text("{ torn")
    assert store.load_result(folder, "k1") is None


def test_replicates_keep_their_nan_figures_across_a_resume(tmp_path: Path) -> None:
    rec = {"index": 1, "convergence": {"e_bfmi_min": math.nan, "r_hat_max": 1.002}, "z": -math.inf}
    save_replicate(tmp_path, rec, "k")
    back = load_replicates(tmp_path, 3, "k")
    assert list(back) == [1]
    assert math.isnan(back[1]["convergence"]["e_bfmi_min"]) and back[1]["convergence"]["r_hat_max"] == 1.002
    assert math.isnan(back[1]["z"])  # non-finite is stored as null (strict JSON) and read as NaN
    assert load_replicates(tmp_path, 3, "other") == {}


def test_source_digest_covers_every_module_of_a_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("a = 1\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("b = 1\n")
    monkeypatch.setattr(store, "repo_root", lambda: tmp_path)
    before = store.source_digest.__wrapped__(("pkg",))
    (tmp_path / "pkg" / "sub" / "b.py").write_text("b = 2\n")
    assert store.source_digest.__wrapped__(("pkg",)) != before
    assert store.source_digest.__wrapped__(("pkg/a.py",)) != store.source_digest.__wrapped__(("pkg",))
