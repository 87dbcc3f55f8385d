"""Running the bridge against real servers: a `BridgeService` on a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bridge.mapping import load_mappings
from bridge.service import BridgeService
from core.clock import SystemClock
from core.config import FacmonConfig
from tests.support import poll_until

MAPPINGS = Path(__file__).resolve().parents[3] / "bridge" / "mappings"


def bridge_env(tmp_path: Path, mappings: Sequence[str | Path]) -> dict[str, str]:
    """FACMON_* variables for a bridge of the shipped mappings named (or mapping files given)."""
    files = [m if isinstance(m, Path) else MAPPINGS / f"{m}.yaml" for m in mappings]
    return {"FACMON_BRIDGE__MAPPINGS": ",".join(map(str, files)),
            "FACMON_BRIDGE__STATE_FILE": str(tmp_path / "bridge-seq.json"),
            "FACMON_BRIDGE__HTTP_LISTEN": "null"}


@contextmanager
def running_bridge(config: FacmonConfig) -> Iterator[BridgeService]:
    """A bridge on a thread of this process, stopped (publisher drained, seq state written) on exit."""
    service = BridgeService(config.bridge, config.mqtt, load_mappings(config.bridge.mappings),
                            config.collector.decode.limits(), SystemClock())
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="bridge-under-test", daemon=True)
    thread.start()
    try:
        poll_until(lambda: service.subscriber.subscribed and service.publisher.connected, 15, what="bridge connected")
        yield service
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "bridge thread did not stop within 30 s"
