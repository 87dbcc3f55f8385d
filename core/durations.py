"""Durations as people write them in facmon's files and commands: `90` (seconds), `250ms`, `30s`, `5m`,
`1.5h`, `1h30m`, `1d`. One parser for the rule files, the site files and the simulators. Pure."""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_WHOLE = re.compile(r"\A(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
FORMS = "'30s', '5m', '1h30m', '250ms', '1d' or a number of seconds"


def parse_duration(value: Any) -> float:
    """Seconds. Raises ValueError naming the accepted forms for anything else, or a negative number."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is written {FORMS}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.match(text):
                raise ValueError(f"{value!r} is not a duration; write {FORMS}") from None
            seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
    if not seconds >= 0 or seconds == float("inf"):  # also NaN
        raise ValueError(f"a duration is zero or more seconds, not {value!r}")
    return seconds


def parse_optional_duration(value: Any) -> float | None:
    """`parse_duration`, with None (a key left unset) passing through: for optional settings."""
    return None if value is None else parse_duration(value)
