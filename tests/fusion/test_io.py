"""`fusion.io`, the one file-output API: atomic writes, `_SUCCESS`, strict JSON (NaN → null), CSV, digests."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion import io


def _strict(text: str) -> object:
    """Parse as a strict JSON reader would: `NaN` / `Infinity` tokens are errors."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert list(target.parent.iterdir()) == []
    io.write_text(target, "old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_json_is_strict_with_non_finite_numbers_as_null(tmp_path: Path) -> None:
    @dataclass
    class Spec:
        seed: int
        scale: float

    path = io.write_json(
        tmp_path / "r.json",
        {
            "nan": math.nan,
            "inf": np.float64(np.inf),
            "arr": np.array([1.5, np.nan]),
            "n": np.int64(3),
            "tags": {"b", "a"},
            "where": Path("x/y"),
            "spec": Spec(1, -math.inf),
            "b": True,
        },
    )
    text = path.read_text()
    assert text.endswith("}\n") and list(_strict(text)) == sorted(_strict(text))  # sorted keys
    assert _strict(text) == {
        "nan": None,
        "inf": None,
        "arr": [1.5, None],
        "n": 3,
        "tags": ["a", "b"],
        "where": "x/y",
        "spec": {"seed": 1, "scale": None},
        "b": True,
    }


def test_null_reads_back_as_nan_only_when_asked(tmp_path: Path) -> None:
    record = {"figures": {"e_bfmi_min": math.nan, "ess": 120.0}, "z": [math.nan]}
    path = io.write_json(tmp_path / "r.json", record)
    assert io.read_json(path) == {"figures": {"e_bfmi_min": None, "ess": 120.0}, "z": [None]}
    back = io.read_json(path, null_as_nan=True)
    assert math.isnan(back["figures"]["e_bfmi_min"]) and math.isnan(back["z"][0])
    assert back["figures"]["ess"] == 120.0


def test_csv_floats_read_back_to_the_same_bits(tmp_path: Path) -> None:
    values = [0.1 + 0.2, 1 / 3, 5e-324, np.nan, -0.0]
    table = pd.DataFrame({"member_id": [f"run{i}" for i in range(1, 6)], "weight": values, "k": range(5)})
    path = io.write_csv(tmp_path / "t.csv", table)
    text = path.read_text()
    assert text.splitlines()[0] == "member_id,weight,k" and "\r" not in text
    back = pd.read_csv(path)
    finite = [0, 1, 2, 4]
    assert np.array_equal(back["weight"].to_numpy()[finite].view(np.uint64), np.array(values)[finite].view(np.uint64))
    assert np.isnan(back["weight"][3]) and back["k"].tolist() == list(range(5))


def test_tree_digest_names_files_relative_and_skips_hidden_and_caches(tmp_path: Path) -> None:
    (tmp_path / "a" / "__pycache__").mkdir(parents=True)
    (tmp_path / "a" / "m.py").write_text("x = 1\n")
    (tmp_path / "a" / "__pycache__" / "m.cpython-312.pyc").write_bytes(b"\0")
    (tmp_path / ".m.py.tmp").write_text("in flight")
    (tmp_path / "b.txt").write_text("b")
    tree = io.sha256_tree(tmp_path)
    assert tree == {
        "a/m.py": hashlib.sha256(b"x = 1\n").hexdigest(),
        "b.txt": hashlib.sha256(b"b").hexdigest(),
    }
    assert io.sha256_tree(tmp_path, "*.py") == {"a/m.py": tree["a/m.py"]}
    assert io.sha256_file(tmp_path / "b.txt") == tree["b.txt"]
    manifest = io.sha256_manifest(tree.items())
    assert manifest == hashlib.sha256(f"a/m.py:{tree['a/m.py']}\nb.txt:{tree['b.txt']}\n".encode()).hexdigest()
    assert io.sha256_manifest(reversed(tree.items())) != manifest  # the order is part of what is hashed


def test_success_stamp_marks_withdraws_and_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    assert not io.is_complete(folder)
    io.mark_success(folder)
    assert io.is_complete(folder) and (folder / io.SUCCESS).read_text() == ""
    io.clear_success(folder)
    io.clear_success(folder)  # withdrawing twice is not an error
    assert not io.is_complete(folder)
