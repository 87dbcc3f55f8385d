"""Where each simulated device's stored history ends, asked of InfluxDB (what the collector wrote):
the continuing world (simulators/timeline.py) publishes only what comes after it."""

from __future__ import annotations

from core.contract import KINDS
from core.influxql import InfluxQLClient, InfluxQueryError, quote_ident, quote_string


def stored_ends(client: InfluxQLClient, site_id: str) -> dict[str, float]:
    """Device id → epoch seconds of its newest stored reading, for the devices of `site_id` that have
    one (any kind). A database the collector has not created yet holds nothing: an empty dict.
    Raises `core.influxql.InfluxUnavailable` when InfluxDB cannot be asked (then nothing is known,
    and publishing would risk a second history)."""
    measurements = ", ".join(quote_ident(kind.value) for kind in KINDS)
    query = f"SELECT last(seq) FROM {measurements} WHERE site = {quote_string(site_id)} GROUP BY device"
    try:
        series = client.query(query, epoch="ms")
    except InfluxQueryError as err:
        if "database not found" in str(err):
            return {}
        raise
    ends: dict[str, float] = {}
    for one in series:
        device = one.tags.get("device")
        if device and one.values:
            ends[device] = max(ends.get(device, 0.0), one.values[0][0] / 1000.0)
    return ends
