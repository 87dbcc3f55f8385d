"""Smart plugs in the simulated park: one on inv-main's output loses power when that inverter cuts off
(its last will, then silence), and comes back with its uptime from zero when the grid returns; one on
its own supply runs through. Their energy counters follow the power they report."""

from __future__ import annotations

from datetime import datetime

import orjson

from core.contract import STATUS_OFFLINE, STATUS_ONLINE
from core.site import Plug, load_site
from simulators.scenario import DEFAULT_SITE, Scenario
from simulators.world import Simulation

STEP_S = 60.0
PARK = load_site(DEFAULT_SITE)
SITE = PARK.model_copy(update={"plugs": (Plug(id="plug-router", rated_w=18, powered_by="inv-main"),
                                         Plug(id="plug-pump", rated_w=750))})


def test_a_plug_on_an_inverter_that_cuts_off_drops_off_and_restarts_when_power_returns() -> None:
    scenario = Scenario.model_validate({
        "name": "blackout", "duration": "10h", "initial": {"battery_soc_pct": {"inv-main": 8, "inv-lab": 8}},
        "events": [{"at": "+0s", "type": "grid_outage", "duration": "6h"},
                   {"at": "+0s", "type": "generator_fault", "device": "gen-main", "fault": "fail_to_start"}]})
    start = datetime(2026, 3, 2, 19, 0, tzinfo=PARK.tz).timestamp()
    sim = Simulation(SITE, scenario, seed=1, start_s=start, step_s=STEP_S)
    statuses: list[tuple[float, bytes, bool]] = []
    readings: dict[str, list[tuple[float, dict]]] = {"plug-router": [], "plug-pump": []}
    for step in sim.steps():
        for message in step.messages:
            if message.device is None or message.device.device not in readings:
                continue
            if message.topic.endswith("/status"):
                if message.device.device == "plug-router":
                    statuses.append((step.t, message.payload, message.will))
            else:
                readings[message.device.device].append((step.t, orjson.loads(message.payload)))
    # online at the start, its last will when inv-main cut off, online when the grid came back, offline at the end
    assert [(p, w) for _, p, w in statuses] == [(STATUS_ONLINE.encode(), False), (STATUS_OFFLINE.encode(), True),
                                                (STATUS_ONLINE.encode(), False), (STATUS_OFFLINE.encode(), False)]
    lost, back = statuses[1][0], statuses[2][0]
    assert start < lost < back <= start + 6 * 3600 + STEP_S
    router = readings["plug-router"]
    assert not any(lost <= t < back for t, _ in router), "a plug without power publishes nothing"
    after = [body for t, body in router if t >= back]
    assert after[0]["uptime_s"] < 2 * STEP_S and after[0]["relay_on"] is True
    before = [body for t, body in router if t < lost]
    assert before[-1]["uptime_s"] > after[0]["uptime_s"]
    pump = readings["plug-pump"]
    assert len(pump) == int(10 * 3600 // STEP_S) + 1  # its own supply: a reading every step
    first, last = pump[0][1], pump[-1][1]
    drawn_kwh = sum(body["power_w"] for _, body in pump[1:]) * STEP_S / 3_600_000
    assert abs((last["energy_kwh"] - first["energy_kwh"]) - drawn_kwh) < 0.01
    assert all(600 <= body["power_w"] <= 900 and -120 <= body["wifi_signal_dbm"] <= 0 for _, body in pump)
