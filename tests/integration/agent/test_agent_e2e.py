"""`facmon agent` end to end: a Modbus inverter polled, published through a real Mosquitto, stored by the
collector in InfluxDB 1.6.7; when the inverter disappears the collector hears `offline`, and the agent
lives on."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from core.clock import SystemClock
from core.config import load_config
from core.contract import DeviceKey, Kind
from core.influxql import InfluxQLClient
from facmon.commands import agent as agent_command
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.agent.devices import ModbusDevice
from tests.integration.agent.test_drivers import DEYE, DEYE_METRICS
from tests.integration.collector.harness import collector_env, running_collector, wait_for_points
from tests.support import poll_until

INV = DeviceKey("park", Kind.INVERTER, "inv-main")


def test_a_modbus_inverter_reaches_influxdb_and_its_disappearance_is_an_offline_status(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    device = ModbusDevice(DEYE).start()
    env = collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database)
    config_file = tmp_path / "facmon.yaml"
    config_file.write_text(f"""agent:
  interval_s: 1
  devices:
    - {{device: inv-main, driver: modbus_tcp, host: 127.0.0.1, port: {device.port}, register_map: deye_hybrid,
       timeout_s: 0.5}}
""")
    config = load_config(config_file, env)
    stop = threading.Event()
    args = argparse.Namespace(once=False, dry_run=False)
    try:
        with running_collector(config) as collector:
            agent = threading.Thread(target=agent_command.run, args=(args, config, SystemClock(), stop), daemon=True)
            agent.start()
            wait_for_points(influx_db, 2)

            def status() -> bool | None:
                return next((s.online for s in collector.table.snapshot() if s.device == INV), None)

            poll_until(lambda: status() is True, 10, what="inv-main online")
            device.stop()
            poll_until(lambda: status() is False, 15, what="inv-main offline after it disappeared")
            assert agent.is_alive()
            stop.set()
            agent.join(15)
            assert not agent.is_alive()
    finally:
        stop.set()
        device.stop()
    rows = influx_db.query("SELECT * FROM inverter")[0].rows()
    assert [r["seq"] for r in rows][:2] == [0, 1]
    stored = {k: v for k, v in rows[0].items() if k not in ("time", "seq", "site", "device")}
    assert stored == {k: v for k, v in DEYE_METRICS.items() if v is not None}
