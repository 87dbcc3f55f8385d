"""A FakeClock harness around the rules engine: feed readings, advance time, read the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from core.clock import FakeClock
from core.contract import DeviceKey, Kind, Reading
from core.decode import StatusChange
from core.site import Site, load_site
from rules.engine import Engine
from rules.model import RulePack, load_rule_files
from rules.route import Route
from rules.store import AlertStore, NotificationRecord

ROOT = Path(__file__).resolve().parents[3]
PARK = ROOT / "simulators" / "sites" / "park.yaml"
PACK = ROOT / "rules" / "packs" / "park.yaml"
KARACHI = ZoneInfo("Asia/Karachi")


def local(text: str) -> float:
    """'2026-01-05 12:00' in Karachi time → epoch seconds (2026-01-05 is a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=KARACHI).timestamp()


def inverter(soc: float = 80.0, grid_ok: bool = True, mode: str | None = None, temp: float = 40.0,
             **extra: object) -> dict:
    return {"grid_v": 230.0 if grid_ok else 0.0, "grid_ok": grid_ok, "mode": mode or ("grid" if grid_ok else "battery"),
            "battery_soc_pct": soc, "battery_v": 52.0, "battery_a": 1.0, "pv_w": 0.0, "load_w": 800.0,
            "inverter_temp_c": temp, "fault_code": None, **extra}


def uplink(isp: str, up: bool = True, rtt: float | None = 40.0, loss: float = 0.0) -> dict:
    return {"isp": isp, "link_up": up, "rtt_ms": rtt if up else None, "jitter_ms": 3.0 if up else None,
            "loss_pct": loss if up else 100.0}


def occupancy(room: str, occupied: bool, people: int = 0, battery: float = 90.0) -> dict:
    return {"room": room, "occupied": occupied, "people": people, "sensor_battery_pct": battery}


def generator(state: str = "off", fuel: float = 70.0, output_w: float = 0.0) -> dict:
    return {"running": state in ("running", "cooldown"), "state": state, "output_w": output_w, "fuel_pct": fuel,
            "engine_hours": 1200.0, "coolant_temp_c": 30.0, "starter_battery_v": 12.8,
            "fault_code": "fail_to_start" if state == "fail_to_start" else None}


def plug(relay_on: bool = True, power_w: float = 18.0) -> dict:
    return {"relay_on": relay_on, "power_w": power_w, "energy_kwh": 412.5, "voltage_v": 229.0,
            "wifi_signal_dbm": -61.0, "uptime_s": 86_400}


class Harness:
    def __init__(self, tmp: Path, start: float, routes: Sequence[Route] | None = None,
                 pack: RulePack | None = None, site: Site | None = None, watchdog: bool = False) -> None:
        self.clock = FakeClock(start)
        self.tmp = tmp
        self.site = site or load_site(PARK)
        self.pack = pack or load_rule_files([PACK])
        self.routes = list(routes or [Route("oncall", group_wait_s=0, group_interval_s=60, repeat_interval_s=3600)])
        self.watchdog = watchdog
        self.seq = 0
        self.store = AlertStore(tmp / "alerts.db", self.clock)
        self.engine = self._engine()

    def _engine(self) -> Engine:
        receivers = {r.receiver for r in self.routes} | {e.receiver for r in self.routes for e in r.escalations}
        engine = Engine(self.pack, {self.site.id: self.site}, self.store, self.routes, self.clock,
                        {name: [f"{name}:hook"] for name in receivers}, watchdog=self.watchdog)
        engine.source_connected(True)  # as the MQTT subscription does when it connects
        return engine

    def restart(self) -> None:
        """A new process: a new store connection and engine on the same database file."""
        self.store.close()
        self.store = AlertStore(self.tmp / "alerts.db", self.clock)
        self.engine = self._engine()

    def send(self, kind: Kind, device: str, metrics: dict) -> None:
        self.seq += 1
        self.engine.handle(Reading(DeviceKey(self.site.id, kind, device), int(self.clock.now() * 1000), self.seq,
                                   metrics))

    def status(self, kind: Kind, device: str, online: bool) -> None:
        self.engine.handle(StatusChange(DeviceKey(self.site.id, kind, device), online))

    def run(self, seconds: float, step: float = 1.0, every: dict | None = None) -> None:
        """Advance `seconds` of fake time, ticking each `step`; `every` maps (kind, device) to the
        metrics sent at each step (devices that keep reporting)."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            for (kind, device), metrics in (every or {}).items():
                self.send(kind, device, metrics)
            self.engine.tick()

    def state(self, rule: str, device: str | None = None) -> str:
        found = [a for a in self.engine.alerts() if a.rule == rule
                 and (device is None or a.labels.get("device") == device)]
        assert len(found) <= 1, found
        return found[0].state.value if found else "inactive"

    def outbox(self) -> list[NotificationRecord]:
        return self.store.notifications()

    def sent_summary(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(receiver, status/reason, alertnames) of each notification, in order."""
        return [(n.receiver, f"{n.payload['status']}/{n.payload['facmon']['reason']}",
                 tuple(sorted(a["labels"]["alertname"] for a in n.payload["alerts"]))) for n in self.outbox()]


def all_devices_reporting(h: Harness, grid_ok: bool = True, soc: float = 80.0) -> dict:
    """Every park device with healthy readings (a dict for Harness.run(every=...))."""
    every: dict = {}
    for inv in h.site.inverters:
        every[(Kind.INVERTER, inv.id)] = inverter(soc=soc, grid_ok=grid_ok)
    for up in h.site.uplinks:
        every[(Kind.UPLINK, up.id)] = uplink(up.isp)
    for occ in h.site.occupancy_sensors:
        every[(Kind.OCCUPANCY, occ.id)] = occupancy(occ.room, False)
    for gen in h.site.generators:
        every[(Kind.GENERATOR, gen.id)] = generator()
    for one in h.site.plugs:
        every[(Kind.PLUG, one.id)] = plug()
    return every
