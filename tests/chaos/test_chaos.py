"""The standing chaos suite (issue 18, item 4): each fault a site has, against real servers, with a
stream of QoS 1 readings running through it. Whatever the broker acknowledged to the devices must end
up in InfluxDB once, except, for a broker SIGKILL, what the shipped broker configuration puts at risk
(deploy/mosquitto/facmon-broker.conf: the messages since its last snapshot, `at_risk_messages`).

Bounded: 2,000-3,000 readings at 400/s per scenario, a 1.5 s fault; about 10 s a scenario. The longer runs
and the table are benchmarks/chaos.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenarios import ChaosLoad, at_risk_messages, run_scenario
from tests.integration.collector.harness import MountRefused

pytestmark = pytest.mark.integration

LOAD = ChaosLoad(devices=20, per_device=100, rate_per_s=400, fault_at_s=1.5, fault_for_s=1.5, settle_s=45)
BROKER_LOAD = ChaosLoad(devices=20, per_device=150, rate_per_s=400, fault_at_s=4.0, fault_for_s=1.5, settle_s=45)


@pytest.mark.parametrize("scenario", ["influx_stopped", "collector_sigkill", "disk_full"])
def test_nothing_the_broker_acknowledged_is_lost_or_doubled(tmp_path: Path, scenario: str) -> None:
    try:
        result = run_scenario(tmp_path, scenario, LOAD)
    except MountRefused as refused:
        pytest.skip(str(refused))
    assert result.published >= 0.9 * LOAD.devices * LOAD.per_device, result
    assert (result.lost, result.doubled) == (0, 0), result
    assert result.stored == result.published
    assert result.recovery_s is not None
    if scenario == "disk_full":
        assert "spool write failures 0," not in result.faults_seen, f"the disk never refused a write: {result}"
    if scenario in ("influx_stopped", "disk_full"):
        assert result.peak_spool_bytes > 0, result


@pytest.mark.parametrize("scenario", ["broker_sigkill", "site_sigkill"])
def test_a_broker_sigkill_loses_no_more_than_its_config_puts_at_risk(tmp_path: Path, scenario: str) -> None:
    """The broker is killed once it has had time to snapshot the collector's session (a broker killed
    before its first snapshot forgets the session itself: docs/operations.md)."""
    result = run_scenario(tmp_path, scenario, BROKER_LOAD)
    assert result.published >= 0.5 * BROKER_LOAD.devices * BROKER_LOAD.per_device, result
    assert result.doubled == 0, result
    assert result.lost <= at_risk_messages(BROKER_LOAD.rate_per_s), result
