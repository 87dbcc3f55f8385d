"""The poller with drivers that fail in ways the drivers did not foresee."""

from __future__ import annotations

import pytest

from agent.poll import PolledDevice, Poller
from core.clock import FakeClock
from core.contract import STATUS_OFFLINE, STATUS_ONLINE, DeviceKey, FieldValue, Kind

INV = DeviceKey("park", Kind.INVERTER, "inv-main")
GOOD = {"grid_v": 230.0, "grid_hz": 50.0, "grid_ok": True, "battery_soc_pct": 80.0, "battery_v": 52.0,
        "battery_a": 1.0, "battery_temp_c": 25.0, "pv_w": 0.0, "load_w": 500.0, "inverter_temp_c": 40.0,
        "fault_code": None, "mode": "grid"}


class SurprisingDriver:
    """Raises what it is given once per entry of `failures` (None: answers GOOD)."""

    where = "test driver"

    def __init__(self, failures: list[Exception | None]) -> None:
        self._failures = failures

    def read(self) -> dict[str, FieldValue]:
        failure = self._failures.pop(0)
        if failure is not None:
            raise failure
        return dict(GOOD)

    def close(self) -> None:
        pass


def test_an_unforeseen_driver_error_is_an_offline_device_and_the_next_round_polls_it_again(
        caplog: pytest.LogCaptureFixture) -> None:
    driver = SurprisingDriver([None, ConnectionResetError(104, "Connection reset by peer"), None])
    polled = PolledDevice(INV, driver)
    poller = Poller([polled], FakeClock(1_700_000_000.0))
    assert poller.poll(polled).status == STATUS_ONLINE
    failed = poller.poll(polled)
    assert (failed.reading, failed.status) == (None, STATUS_OFFLINE)
    assert polled.last_error == "test driver: unexpected ConnectionResetError: [Errno 104] Connection reset by peer"
    assert any(record.exc_info and "a facmon bug" in record.getMessage() for record in caplog.records)
    back = poller.poll(polled)
    assert back.status == STATUS_ONLINE and back.reading is not None and back.reading.seq == 1


def test_a_lasting_driver_bug_logs_its_traceback_once_a_minute_not_every_round(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_700_000_000.0)
    driver = SurprisingDriver([KeyError("grid_v")] * 13)
    polled = PolledDevice(INV, driver)
    poller = Poller([polled], clock)
    for _ in range(13):  # a round every 5 s for a minute
        assert poller.poll(polled).reading is None
        clock.advance(5)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 2 and tracebacks[1].suppressed_since_last == 11
