"""`rules.clock: catch_up` (facmon up's demo): a replayed past is judged on device time, the present
on the wall clock. A grid outage an hour ago in the replay fires and resolves at its device times;
once a reading is within 30 s of the wall clock the engine goes live, and a new outage fires on the
wall clock's ticks, with no reading needed to move time."""

from __future__ import annotations

from pathlib import Path

from core.clock import FakeClock
from core.contract import DeviceKey, Kind, Reading
from core.site import load_site
from rules.alerts import AlertState
from rules.engine import Engine
from rules.model import load_rule_files
from rules.replay import CatchUpClock, DeviceTimeDriver
from rules.route import Route
from rules.store import AlertStore
from tests.unit.rules.rules_harness import PACK, PARK, inverter, local

NOW = local("2026-01-05 20:00")  # a Monday evening: no load-shedding window at 19:00-19:10
INV = DeviceKey("park", Kind.INVERTER, "inv-main")


def _reading(t: float, seq: int, grid_ok: bool) -> Reading:
    return Reading(INV, int(t * 1000), seq, inverter(grid_ok=grid_ok))


def test_the_replay_is_judged_on_device_time_then_the_engine_goes_live(tmp_path: Path) -> None:
    wall = FakeClock(NOW)
    catch_up = CatchUpClock(FakeClock(0.0), wall)
    store = AlertStore(tmp_path / "alerts.db", wall)
    engine = Engine(load_rule_files([PACK]), {"park": load_site(PARK)}, store,
                    [Route("oncall", group_wait_s=0, group_interval_s=60, repeat_interval_s=3600)], catch_up,
                    {"oncall": ["oncall:feed"]})
    driver = DeviceTimeDriver(engine, catch_up.device, 10.0, started=False, catch_up=catch_up)
    driver.source_connected(True)
    outage = (NOW - 3600, NOW - 3000)
    seq = 0
    for t in range(int(NOW - 4000), int(NOW - 30), 10):  # the replayed past, handled in a blink of wall time
        seq += 1
        driver.handle(_reading(t, seq, not outage[0] <= t < outage[1]))
    assert not catch_up.live, "readings more than 30 s behind the wall clock are the past"
    grid = [(tr.to_state, tr.at) for tr in store.history() if tr.rule == "GridOutage"]
    assert [state for state, _ in grid] == [AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED]
    assert outage[0] + 10 <= grid[1][1] <= outage[0] + 20  # `for: 10s`, on device time
    assert outage[1] + 30 <= grid[2][1] <= outage[1] + 40  # `keep_firing_for: 30s`
    seq += 1
    driver.handle(_reading(NOW - 10, seq, True))
    assert catch_up.live and catch_up.now() == NOW
    seq += 1
    driver.handle(_reading(NOW, seq, False))  # live: the grid fails now; only the wall clock moves on
    for _ in range(15):
        wall.advance(1.0)
        engine.tick()
    live = [(tr.to_state, tr.at) for tr in store.history(since=NOW) if tr.rule == "GridOutage"]
    assert [state for state, _ in live] == [AlertState.PENDING, AlertState.FIRING]
    assert live[1][1] == NOW + 10
