"""Any valid reading, with any label a device may send (Urdu, spaces, commas, `=`, quotes; labels the
contract refuses are checked to be refused), becomes line protocol that the real influxd 1.6.7
accepts and reads back with the very tags and field values that were decoded."""

from __future__ import annotations

import itertools

import urllib3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.contract import METRICS, DeviceKey, Kind, Reading, encode_reading
from core.decode import DecodeLimits, Reject, RejectReason, decode_message
from core.influxql import InfluxQLClient, quote_ident
from core.line_protocol import reading_to_line
from tests.unit.core.strategies import LABEL_CANDIDATES, readings

ANY_TIME = DecodeLimits(max_future_s=1e12, max_age_s=1e12)
_device_numbers = itertools.count()
_HTTP = urllib3.PoolManager()
NASTY_LABELS = ["نیا ٹیل فائبر", "a,b=c d", ' "quoted" ', "trailing\\", "\\", "x\\ y", "   ", "#not-a-comment",
                "='", "end space "]


def _decoded(reading: Reading) -> Reading | None:
    """What the collector would store for `reading` as a device publishes it, with a device id of its
    own so no two examples share a series; None when the contract refuses its label."""
    unique = Reading(DeviceKey(reading.device.site, reading.device.kind, f"rt-{next(_device_numbers)}"),
                     reading.ts_ms, reading.seq, reading.metrics)
    result = decode_message(unique.device.reading_topic(), encode_reading(unique), unique.ts_ms / 1000, ANY_TIME)
    if isinstance(result, Reject):
        label = next(v for m in METRICS[unique.device.kind] if m.is_tag for v in [unique.metrics[m.name]])
        assert result.reason is RejectReason.BAD_LABEL, result.detail
        assert "\\" in label or not label.strip(), label
        return None
    assert result == unique
    return result


def _expected_row(reading: Reading) -> dict[str, object]:
    row: dict[str, object] = {"time": reading.ts_ms, "device": reading.device.device, "site": reading.device.site,
                              "seq": reading.seq}
    for metric in METRICS[reading.device.kind]:
        if reading.metrics.get(metric.name) is not None:  # left out or null: nothing stored
            row[metric.name] = reading.metrics[metric.name]
    return row


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.lists(readings(labels=LABEL_CANDIDATES), min_size=1, max_size=15))
@example([Reading(DeviceKey("park", Kind.UPLINK, "x"), 1_767_225_600_000, 1, {
    "isp": label, "link_up": True, "rtt_ms": 1.5, "jitter_ms": None, "loss_pct": 0.0, "iface": label})
    for label in NASTY_LABELS])
def test_valid_readings_with_any_labels_read_back_identical(influx_db: InfluxQLClient,
                                                            batch: list[Reading]) -> None:
    valid = [r for r in map(_decoded, batch) if r is not None]
    if not valid:
        return
    body = "\n".join(reading_to_line(r) for r in valid).encode()
    response = _HTTP.request("POST", f"{influx_db.url}/write?db={influx_db.database}&precision=ns", body=body)
    assert response.status == 204, response.data.decode()
    for kind in {r.device.kind for r in valid}:
        expected = {r.device.device: _expected_row(r) for r in valid if r.device.kind is kind}
        ids = "|".join(expected)  # rt-<n>: nothing to quote in a regex
        series = influx_db.query(f"SELECT * FROM {quote_ident(kind.value)} WHERE device =~ /^({ids})$/")
        # SELECT * has a column for every field and tag of the measurement; absent ones are null.
        stored = {row["device"]: {k: v for k, v in row.items() if v is not None} for s in series for row in s.rows()}
        assert stored == expected
