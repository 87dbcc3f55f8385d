"""Running the collector against real servers: in-process (a thread) or as a `facmon collect`
subprocess (for SIGKILL tests), publishing known readings, and counting what InfluxDB holds."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt

from collector.service import CollectorService
from core.clock import SystemClock
from core.config import FacmonConfig, load_config
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influx_write import line_writer_for
from core.influxql import InfluxQLClient, quote_ident
from core.known_devices import known_devices_from_files
from tests.support import poll_until

_CLOCK = SystemClock()


def collector_env(tmp_path: Path, broker_port: int, influx_url: str, database: str, *, api: str = "v1",
                  client_id: str = "facmon-collector-test", extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """FACMON_* variables for a collector on these servers, with its spool and dead letters in tmp_path."""
    env = {
        "FACMON_MQTT__HOST": "127.0.0.1",
        "FACMON_MQTT__PORT": str(broker_port),
        "FACMON_COLLECTOR__MQTT__CLIENT_ID": client_id,
        "FACMON_MQTT__RECONNECT_MAX_S": "1",
        "FACMON_INFLUXDB__API": api,
        "FACMON_INFLUXDB__URL": influx_url,
        "FACMON_INFLUXDB__DATABASE": database,
        "FACMON_COLLECTOR__SPOOL__DIR": str(tmp_path / "spool"),
        "FACMON_COLLECTOR__DEAD_LETTERS__FILE": str(tmp_path / "dead-letters.jsonl"),
        "FACMON_COLLECTOR__WRITER__RETRY_MAX_S": "0.5",
        "FACMON_COLLECTOR__HTTP_LISTEN": "null",
        "FACMON_COLLECTOR__DECODE__MAX_AGE_S": str(365 * 86400),
    }
    env.update(extra or {})
    return env


def config_from(env: Mapping[str, str]) -> FacmonConfig:
    return load_config(None, env)


@contextmanager
def running_collector(config: FacmonConfig) -> Iterator[CollectorService]:
    """A collector on a thread of this process, stopped (and its spool closed) on exit."""
    known = known_devices_from_files(config.sites)  # as `facmon collect` does
    service = CollectorService(config.collector, config.mqtt, line_writer_for(config.influxdb), SystemClock(), known)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="collector-under-test", daemon=True)
    thread.start()
    try:
        # Publishing before the subscription exists would send readings to nobody.
        poll_until(lambda: service.source.subscribed, 15, what="collector subscribed")
        yield service
    finally:
        stop.set()
        service.wake()
        thread.join(timeout=30)
        assert not thread.is_alive(), "collector thread did not stop within 30 s"


class CollectorProcess:
    """`python -m facmon collect` as a child process with the given FACMON_* environment."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the child; `wait_subscribed` before publishing to a broker that has no session yet."""
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child
        self._process = subprocess.Popen([sys.executable, "-m", "facmon", "collect"], env=self._env,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[3])
        log.close()

    def wait_subscribed(self, times: int = 1, timeout_s: float = 20) -> None:
        """Wait until the child logged its `times`-th confirmed subscription."""
        poll_until(lambda: self._log_path.read_text(errors="replace").count('msg="mqtt subscribed"') >= times,
                   timeout_s, 0.05, f"collector subscribed ({times})")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> int:
        if self._process is None or self._process.poll() is not None:
            return self._process.returncode if self._process else 0
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise

    def log_tail(self) -> str:
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-30:])


class MountRefused(Exception):
    """A tmpfs could not be mounted here (it needs root); the message says why."""


@contextmanager
def mounted_tmpfs(mount_point: Path, size_mib: int) -> Iterator[Path]:
    """A small file system of its own at `mount_point` (a tmpfs of `size_mib`), unmounted on exit.
    Raises MountRefused where mounting is not allowed."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        raise MountRefused(f"cannot mount a tmpfs at {mount_point} (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill_disk(disk: Path) -> Path:
    """Another writer takes every free byte of the file system at `disk` (until ENOSPC); returns its
    file, to delete when the space should come back."""
    ballast = disk / "ballast"
    limit = shutil.disk_usage(disk).total
    with open(ballast, "wb", buffering=0) as handle:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            for _ in range(limit // chunk + 1):
                try:
                    handle.write(block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    return ballast


def inverter_readings(site: str, devices: int, per_device: int, start_ms: int, step_ms: int = 1000) -> list[Reading]:
    """Deterministic, valid inverter readings; values encode (device, seq) so read-back can be checked."""
    readings = []
    for seq in range(per_device):
        for d in range(devices):
            readings.append(Reading(DeviceKey(site, Kind.INVERTER, f"inv-{d}"), start_ms + seq * step_ms, seq, {
                "grid_v": 220.0 + d + seq / 1000, "grid_ok": True, "mode": "grid",
                "battery_soc_pct": float(seq % 101), "battery_v": 51.2, "battery_a": -3.5,
                "pv_w": 1000.0 + seq, "load_w": 900.0, "fault_code": None}))
    return readings


class Publisher:
    """A QoS 1 publisher that waits for the broker's PUBACK of everything it sent."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        poll_until(self._client.is_connected, 10, what="publisher connected")
        self._infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._infos.append(self._client.publish(topic, payload, qos=qos, retain=retain))

    def publish_readings(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            self.publish(reading.device.reading_topic(), encode_reading(reading))

    def wait_all_acked(self, timeout_s: float = 30) -> None:
        poll_until(lambda: all(i.is_published() for i in self._infos), timeout_s, 0.02, "PUBACK of every publish")
        self._infos.clear()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def expected_seqs(devices: int, per_device: int) -> dict[str, list[int]]:
    """What `seqs_by_device` returns for every reading of `inverter_readings(devices, per_device)`."""
    return {f"inv-{d}": list(range(per_device)) for d in range(devices)}


def count_points(db: InfluxQLClient, measurement: str = "inverter") -> int:
    series = db.query(f"SELECT count(seq) FROM {quote_ident(measurement)}")
    return int(series[0].values[0][1]) if series else 0


def wait_for_points(db: InfluxQLClient, expected: int, timeout_s: float = 60, measurement: str = "inverter") -> int:
    return poll_until(lambda: count_points(db, measurement) >= expected and count_points(db, measurement),
                      timeout_s, 0.1, f"{expected} points in {measurement}")


def seqs_by_device(db: InfluxQLClient, measurement: str = "inverter") -> dict[str, list[int]]:
    series = db.query(f"SELECT seq FROM {quote_ident(measurement)} GROUP BY device")
    return {s.tags["device"]: [row[1] for row in s.values] for s in series}


def now_ms() -> int:
    return int(_CLOCK.now() * 1000)
