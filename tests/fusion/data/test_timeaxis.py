"""Time decoding: the prototype's rules and the fixed CF decoding."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from fusion.data.timeaxis import SECONDS_PER_YEAR, TimeUnitsError, decode_time, parse_origin, valid_time_rows


def test_day_00_means_last_day_of_previous_month() -> None:
    assert parse_origin("2000-01-00 00:00:00") == dt.datetime(1999, 12, 31)
    assert parse_origin("2001-03-00") == dt.datetime(2001, 2, 28)


def test_seconds_since_day_00_decodes_as_the_prototype() -> None:
    seconds = np.array([4.73353890e08])
    expected = dt.datetime(1999, 12, 31) + dt.timedelta(seconds=4.73353890e08)
    year = expected.year + (expected - dt.datetime(expected.year, 1, 1)).total_seconds() / SECONDS_PER_YEAR
    for compat in ("prototype", "fixed"):
        assert decode_time(seconds, "seconds since 2000-01-00 00:00:00", compat)[0] == year
    assert 2014.99 < year < 2015.01


def test_no_units_or_years_are_decimal_years_already() -> None:
    t = np.array([2015.0, 2016.5])
    for units in (None, "", "years"):
        np.testing.assert_array_equal(decode_time(t, units, "fixed"), t)


def test_fill_and_huge_values_are_dropped() -> None:
    raw = np.array([1.0, 9.969209968386869e36, 2.0, -1e21, np.nan, -999.0])
    keep = valid_time_rows(raw, [-999.0])
    np.testing.assert_array_equal(keep, [True, False, True, False, False, False])


def test_prototype_reads_days_as_years_but_fixed_decodes_them() -> None:
    days = np.array([365.0])
    assert decode_time(days, "days since 2015-01-01", "prototype")[0] == 365.0
    decoded = decode_time(days, "days since 2015-01-01", "fixed")[0]
    assert abs(decoded - 2016.0) < 0.01


def test_unknown_units_are_an_error_when_fixed() -> None:
    with pytest.raises(TimeUnitsError, match="fortnights"):
        decode_time(np.array([1.0]), "fortnights since 2000-01-01", "fixed")
    with pytest.raises(TimeUnitsError, match="furlongs"):
        decode_time(np.array([1.0]), "furlongs", "fixed")
