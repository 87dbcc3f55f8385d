"""Settings of `facmon probe`, the real uplink probe agent on the park's router host."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Literal

from pydantic import Field, model_validator

from core.contract import ID_PATTERN, MAX_LABEL_CHARS
from core.settings.base import Section


class ProbeTarget(Section):
    """Something on the far side of the uplink to measure against: a `host` (ICMP echo, or a TCP
    connect to `port`) or a `url` (HTTP(S) request timed to the response's status line)."""

    host: str | None = Field(None, min_length=1, max_length=253)
    url: str | None = Field(None, pattern=r"^https?://[^/\s]+")
    method: Literal["auto", "icmp", "tcp", "http"] = "auto"
    """auto: ICMP if this host may open an ICMP socket, else a TCP connect to `port`; `url` implies http."""
    port: int = Field(443, ge=1, le=65535)
    """TCP port for method tcp (and auto without ICMP). A closed port counts as loss, not as an answer."""

    @model_validator(mode="after")
    def _one_address(self) -> ProbeTarget:
        if (self.host is None) == (self.url is None):
            raise ValueError("give exactly one of host (ICMP/TCP) or url (HTTP)")
        if self.url is not None and self.method not in ("auto", "http"):
            raise ValueError(f"a url target is timed over HTTP; method {self.method!r} needs a host instead")
        if self.host is not None and self.method == "http":
            raise ValueError("method http needs a url, e.g. url: http://example.net/")
        return self


class ProbeUplink(Section):
    """One ISP's uplink: the device it publishes as, and how to send its probes out of that ISP."""

    device: str = Field(pattern=rf"^{ID_PATTERN}$")
    isp: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    iface: str = Field(min_length=1, max_length=15, pattern=r"^[^/\s]+$")
    """The router interface of this ISP; its link state comes from /sys/class/net/<iface>."""
    source_address: IPv4Address | None = None
    """Bind probes to this local address (policy routing by source sends them out of this ISP)."""
    bind_to_interface: bool = False
    """Also bind probes to `iface` with SO_BINDTODEVICE (needs root or CAP_NET_RAW)."""
    targets: tuple[ProbeTarget, ...] = Field(min_length=1)


class ProbeSettings(Section):
    """Defaults of `facmon probe`; `uplinks` must be configured (see docs/simulators.md)."""

    site: str = Field("park", pattern=rf"^{ID_PATTERN}$")
    interval_s: float = Field(10.0, ge=1, le=3600)
    """A reading per uplink this often (a round of probes, then the reading)."""
    probes_per_target: int = Field(5, ge=1, le=100)
    spacing_s: float = Field(0.2, ge=0, le=10)
    """Pause between two probes to the same target."""
    timeout_s: float = Field(1.0, gt=0, le=30)
    """A probe without an answer after this long counts as lost."""
    client_id_prefix: str = Field("facmon-probe", min_length=1, max_length=64)
    uplinks: tuple[ProbeUplink, ...] = ()
