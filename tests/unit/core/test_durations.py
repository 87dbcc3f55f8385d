"""The one duration parser of rule files, site files and the simulators."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.durations import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), ("90", 90.0), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0), ("1h30m", 5400.0),
    ("2h30m", 9000.0), ("1d", 86_400.0), ("30d", 2_592_000.0), (" 10 m ", 600.0), ("1m30s", 90.0), (0, 0.0)])
def test_the_forms_people_write(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "fragment"), [
    ("soon", "'soon' is not a duration; write '30s', '5m', '1h30m', '250ms', '1d' or a number of seconds"),
    ("", "is not a duration"), ("1x", "is not a duration"), ("h", "is not a duration"), ("5 minutes", "not a dur"),
    ("-5", "zero or more seconds"), (-1, "zero or more seconds"), ("nan", "zero or more"), ("inf", "zero or more"),
    (True, "a duration is written")])
def test_anything_else_is_refused_with_the_forms(text: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


@given(st.integers(0, 400), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_compound_durations_add_up(d: int, h: int, m: int, s: int) -> None:
    text = "".join(f"{n}{unit}" for n, unit in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if n) or "0s"
    assert parse_duration(text) == d * 86_400 + h * 3600 + m * 60 + s
