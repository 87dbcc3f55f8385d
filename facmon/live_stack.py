"""Which broker a tester's command talks to, and which sites the stack behind it watches (the live
sites, which `facmon simulate` must not write into unless told to, and which `facmon sites retire`
must not clear).

The broker, in order:
  1. `mqtt.host` / `mqtt.port` when the configuration sets them (file or FACMON_MQTT__*);
  2. the broker of a running `facmon up`: its own Mosquitto on 127.0.0.1:`local.broker_port`, if
     something answers there (and `local.start_broker` is on);
  3. the `mqtt.*` defaults (127.0.0.1:1883).

The live sites are the ids of `sites.files`; when the broker is `facmon up`'s own and `sites.files` is
empty, the shipped demo park (what `facmon up` watches then). A site id starting with `test-` is a test
site by name: never live, whatever the files say.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.config import FacmonConfig
from core.known_devices import load_sites
from core.settings.mqtt import MqttSettings
from core.site import Site
from simulators.scenario import DEFAULT_SITE

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TEST_SITE_PREFIX = "test-"


@dataclass(frozen=True)
class LiveSite:
    """A site the stack watches: the file describing it and the site read from that file (read once,
    when the stack is found)."""

    path: Path
    site: Site


@dataclass(frozen=True)
class LiveStack:
    mqtt: MqttSettings
    """The broker to talk to (the rest of mqtt.* as configured: credentials, TLS)."""
    broker_origin: str
    """Why this broker, in words for the first line of a command's output."""
    live_sites: Mapping[str, LiveSite] = field(default_factory=dict)
    """The sites the stack behind the broker watches, by id."""
    is_facmon_up: bool = False
    live_sites_from: str = "sites.files"
    """Where the live sites come from, in words for an error message."""

    @property
    def broker_url(self) -> str:
        return f"mqtt://{self.mqtt.host}:{self.mqtt.port}"

    def is_live(self, site_id: str) -> bool:
        return site_id in self.live_sites and not site_id.startswith(TEST_SITE_PREFIX)


def broker_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts a TCP connection at host:port within `timeout_s`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def find_live_stack(config: FacmonConfig, answers: Callable[[str, int], bool] = broker_answers) -> LiveStack:
    """The broker and live sites for `config` (see the module docstring). Raises `core.site.SiteFileError`
    or `ValueError` when a site file of `sites.files` cannot be read."""
    local = config.local
    explicit = {"host", "port"} & config.mqtt.model_fields_set
    if explicit:
        mqtt = config.mqtt
        origin = "mqtt.host/mqtt.port as configured"
    elif local.start_broker and answers("127.0.0.1", local.broker_port):
        mqtt = config.mqtt.model_copy(update={"host": "127.0.0.1", "port": local.broker_port})
        origin = f"the broker of the running `facmon up` (local.broker_port {local.broker_port})"
    else:
        mqtt = config.mqtt
        origin = (f"the default mqtt.* (no `facmon up` answers on 127.0.0.1:{local.broker_port}; set "
                  "FACMON_MQTT__HOST / FACMON_MQTT__PORT to choose)")
    is_up = local.start_broker and mqtt.host in LOOPBACK_HOSTS and mqtt.port == local.broker_port
    files = config.sites.files or ((DEFAULT_SITE,) if is_up else ())
    sites: dict[str, Site] = load_sites(files)
    live = {site_id: LiveSite(path, site) for (site_id, site), path in zip(sites.items(), files, strict=True)}
    source = "sites.files" if config.sites.files else "the demo park `facmon up` watches while sites.files is empty"
    return LiveStack(mqtt, origin, live, is_up, source)
