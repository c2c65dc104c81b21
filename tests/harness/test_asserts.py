"""`assert_bitwise_equal` and the weights domain assert say where and by how much."""

from __future__ import annotations

import numpy as np
import pytest

from harness.asserts import (
    assert_bitwise_equal,
    assert_valid_weights,
    bitwise_difference,
    order_difference,
    ulp_distance,
    weights_problems,
)


def test_ulp_distance_counts_representable_floats() -> None:
    one = np.float64(1.0)
    assert ulp_distance(one, np.nextafter(one, 2.0)) == 1
    assert ulp_distance(one, np.nextafter(np.nextafter(one, 0.0), 0.0)) == 2
    assert ulp_distance(np.float64(-0.0), np.float64(0.0)) == 0
    tiny = np.nextafter(np.float64(0.0), 1.0)
    assert ulp_distance(-tiny, tiny) == 2  # across zero
    assert ulp_distance(np.float32(1.0), np.nextafter(np.float32(1.0), np.float32(2.0))) == 1
    assert ulp_distance(np.float64(np.nan), one) is None


def test_bitwise_difference_names_array_index_values_and_ulp() -> None:
    expected = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    actual = expected.copy()
    actual[1, 2] = np.nextafter(actual[1, 2], np.inf)
    actual[2, 3] += 1.0
    diff = bitwise_difference(actual, expected, "F")
    assert diff is not None and diff.index == (1, 2) and diff.ulp == 1 and diff.n_different == 2
    assert diff.message == (
        f"F: 2 of 12 values differ; first at F[1, 2]: actual {float(actual[1, 2])!r} (float64) "
        f"vs expected {float(expected[1, 2])!r} (float64), 1 ULP apart"
    )


def test_bitwise_difference_dtype_shape_and_signed_zero() -> None:
    a = np.zeros(3, dtype=np.float32)
    assert (
        bitwise_difference(a, a.astype(np.float64), "y_obs").message
        == "y_obs: dtype float32 != expected float64"
    )
    assert (
        bitwise_difference(a, np.zeros(4, np.float32), "y_obs").message
        == "y_obs: shape (3,) != expected (4,)"
    )
    b = a.copy()
    b[1] = -0.0
    assert bitwise_difference(b, a, "y_obs").index == (1,)  # equal as numbers, not as bits
    assert bitwise_difference(np.array([np.nan]), np.array([np.nan]), "x") is None
    assert bitwise_difference(a[::2], a[::2].copy(), "strided") is None  # non-contiguous input


def test_assert_bitwise_equal_raises_with_the_message() -> None:
    with pytest.raises(AssertionError, match=r"speed: 1 of 2 values differ; first at speed\[0\]"):
        assert_bitwise_equal(np.array([1.0, 2.0]), np.array([1.5, 2.0]), "speed")
    assert_bitwise_equal(np.array(["run1"]), np.array(["run1"]), "ids")


def test_weights_domain() -> None:
    assert weights_problems([0.25, 0.75], ["run1", "run2"]) == []
    problems = weights_problems([0.5, -0.1, np.nan], ["run1", "run1", "run2"])
    assert any("1 negative values, first at [1]" in p for p in problems)
    assert any("1 non-finite values" in p for p in problems)
    assert any("duplicate member ids ['run1']" in p for p in problems)
    assert weights_problems([0.5, 0.6]) == ["weights: sum 1.1 != 1 (off by 0.1, tolerance 1e-12)"]
    assert weights_problems([1.0], ["run1", "run2"]) == ["weights: 1 weights for 2 member ids"]
    with pytest.raises(AssertionError, match="sum"):
        assert_valid_weights([0.2, 0.2])


def test_order_difference_names_the_first_label_out_of_place() -> None:
    assert order_difference(["run1", "run2"], ["run1", "run2"]) is None
    assert order_difference(["run1", "run3", "run2"], ["run1", "run2", "run3"]) == (1, "run3", "run2")
    assert order_difference(["run1"], ["run1", "run2"]) == (1, "<none>", "run2")  # one list ends first
    assert order_difference([1, 2], ["1", "3"]) == (1, "2", "3")  # compared as text, as tables are read
