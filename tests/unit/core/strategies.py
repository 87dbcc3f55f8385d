"""Hypothesis strategies for valid readings by the contract (core.contract.METRICS), shared by the
pure encode/decode properties and the line-protocol round trip through a real InfluxDB."""

from __future__ import annotations

from hypothesis import strategies as st

from core.contract import ID_PATTERN, MAX_LABEL_CHARS, METRICS, SEQ_MAX, DeviceKey, Kind, Metric, MetricType, Reading

# Characters line protocol must escape or that other encoders get wrong, plus scripts used on site.
_NASTY = st.sampled_from([*' ,="\'\\#\u00e9\u0627\u0631\u062f\u0648\u06d2\U0001f600', "\\ ", "\\,", "\\="])
_PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"))


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(_NASTY, _PRINTABLE), max_size=max_size).map("".join).map(
        lambda s: s[:max_size]).filter(str.isprintable)


LABEL_CANDIDATES = _text(MAX_LABEL_CHARS)
"""Any printable text up to the label length: valid labels, and some the contract refuses
(blank, or holding a backslash)."""

VALID_LABELS = LABEL_CANDIDATES.filter(lambda s: bool(s.strip()) and "\\" not in s)
TEXT_VALUES = _text(40)  # the 256-character limit is tested in test_decode.py
IDS = st.from_regex(rf"\A{ID_PATTERN}\Z", fullmatch=True)
TS_MS = st.integers(min_value=0, max_value=9_000_000_000_000)  # 1970 .. 2255, inside InfluxDB's range


def metric_values(metric: Metric, labels: st.SearchStrategy[str] = VALID_LABELS) -> st.SearchStrategy[object]:
    """Values of `metric` that the contract accepts, as `core.decode` returns them."""
    kind = metric.type
    if kind is MetricType.FLOAT:
        values: st.SearchStrategy[object] = st.floats(metric.minimum, metric.maximum, allow_nan=False)
        values = values.map(lambda v: v + 0.0)  # -0.0 is stored and read back as 0.0
    elif kind is MetricType.INT:
        values = st.integers(int(metric.minimum or 0), int(metric.maximum or 2**31))
    elif kind is MetricType.BOOL:
        values = st.booleans()
    elif kind is MetricType.CHOICE:
        values = st.sampled_from(metric.choices)
    elif kind is MetricType.LABEL:
        values = labels
    else:
        values = TEXT_VALUES
    return st.one_of(st.none(), values) if metric.nullable else values


@st.composite
def readings(draw: st.DrawFn, kind: Kind | None = None, labels: st.SearchStrategy[str] = VALID_LABELS) -> Reading:
    """A valid reading: optional metrics sometimes left out, nullable ones sometimes null."""
    kind = kind or draw(st.sampled_from(list(Kind)))
    metrics = {}
    for metric in METRICS[kind]:
        if metric.required or draw(st.booleans()):
            metrics[metric.name] = draw(metric_values(metric, labels))
    return Reading(DeviceKey(draw(IDS), kind, draw(IDS)), draw(TS_MS), draw(st.integers(0, SEQ_MAX)), metrics)
