"""Model time axes to decimal years, the way the prototype read them (and the fixed way).

The prototype reads time undecoded: `seconds since Y-M-D h:m:s` goes through `datetime`
(a day of `00` meaning the last day of the previous month, as PSU-ISM writes it); anything
else is taken to be decimal years already. Under `compat: fixed` the other CF units
(`days since`, `hours since`, …) are decoded too and unknown units are an error.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["decode_time", "valid_time_rows", "parse_origin", "SECONDS_PER_YEAR", "TimeUnitsError"]

SECONDS_PER_YEAR: float = 365.2425 * 86400.0
_FILL_MAGNITUDE = 1e20
_UNIT_SECONDS = {
    "second": 1.0, "seconds": 1.0, "sec": 1.0, "secs": 1.0, "s": 1.0,
    "minute": 60.0, "minutes": 60.0, "min": 60.0, "mins": 60.0,
    "hour": 3600.0, "hours": 3600.0, "hr": 3600.0, "hrs": 3600.0, "h": 3600.0,
    "day": 86400.0, "days": 86400.0, "d": 86400.0,
}
_YEAR_UNITS = {"", "year", "years", "yr", "yrs", "a", "annum", "decimal years", "decimal_years"}
_SINCE = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$", re.IGNORECASE)
_PROTOTYPE_ORIGIN = re.compile(r"since\s+(\d{4})-(\d{2})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})")
_ORIGIN = re.compile(
    r"^(-?\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d*)?)?)?\s*(?:Z|UTC)?$"
)


class TimeUnitsError(ValueError):
    """Units that cannot be turned into decimal years."""


def parse_origin(text: str) -> _dt.datetime:
    """`Y-M-D[ h:m[:s]]` with day `00` meaning the last day of the previous month."""
    m = _ORIGIN.match(text.strip())
    if m is None:
        raise TimeUnitsError(f"cannot parse the reference date '{text}'")
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    hh, mm, ss = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
    if day == 0:
        return _dt.datetime(year, month, 1, hh, mm, ss) - _dt.timedelta(days=1)
    return _dt.datetime(year, month, day, hh, mm, ss)


def _to_decimal_year(origin: _dt.datetime, seconds: float) -> float:
    moment = origin + _dt.timedelta(seconds=seconds)
    start = _dt.datetime(moment.year, 1, 1)
    return moment.year + (moment - start).total_seconds() / SECONDS_PER_YEAR


def valid_time_rows(values: np.ndarray, fill_values: Sequence[float] = ()) -> np.ndarray:
    """Rows to keep: not NaN, not a `_FillValue`/`missing_value`, magnitude at most 1e20."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values) & (np.abs(values) <= _FILL_MAGNITUDE)
    for fill in fill_values:
        keep &= values != fill
    return keep


def _prototype_decode(values: np.ndarray, units: str | None) -> np.ndarray:
    """The prototype's reading: seconds only when the units contain both `since` and `second`
    (case-sensitive substrings), the origin found by its `YYYY-MM-DD hh:mm:ss` search; anything
    else, or no units, is decimal years already (defect 4)."""
    if units is None or "since" not in units or "second" not in units:
        return values.copy()
    m = _PROTOTYPE_ORIGIN.search(units)
    if m is None:
        raise TimeUnitsError(f"cannot parse the reference date in '{units}' (the prototype needs YYYY-MM-DD hh:mm:ss)")
    try:
        origin = parse_origin(f"{m[1]}-{m[2]}-{m[3]} {m[4]}:{m[5]}:{m[6]}")
    except ValueError as exc:  # e.g. month 00: the prototype's datetime() fails the same way
        raise TimeUnitsError(f"invalid reference date in '{units}' ({exc})") from None
    return np.array([_to_decimal_year(origin, float(v)) for v in values], dtype=np.float64)


def decode_time(values: np.ndarray, units: str | None, compat: str = "fixed") -> np.ndarray:
    """Decimal years for already-filtered raw time values."""
    values = np.asarray(values, dtype=np.float64)
    if compat == "prototype":
        return _prototype_decode(values, units)
    text = (units or "").strip()
    since = _SINCE.match(text)
    if since is not None:
        unit = since[1].lower()
        if unit not in _UNIT_SECONDS:
            raise TimeUnitsError(f"unknown time unit '{since[1]}' in '{text}'")
        origin = parse_origin(since[2])
        scale = _UNIT_SECONDS[unit]
        return np.array([_to_decimal_year(origin, float(v) * scale) for v in values], dtype=np.float64)
    if text.lower() in _YEAR_UNITS:
        return values.copy()
    raise TimeUnitsError(f"unknown time units '{text}' (expected '<unit> since <date>' or years)")
