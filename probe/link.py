"""Link state of a router interface from sysfs (Linux): `operstate` and `carrier`.

An interface is up when the kernel says its carrier is present. `operstate` is "up", or "unknown"
for drivers that do not track it (loopback, many PPP/tun and USB-modem drivers); "down",
"lowerlayerdown", "notpresent" and "dormant" are down whatever the carrier says. Reading `carrier`
of an administratively down interface fails with EINVAL: that is down too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probe import LinkStateError

SYS_CLASS_NET = Path("/sys/class/net")
_UP_OPERSTATES = ("up", "unknown")


@dataclass(frozen=True, slots=True)
class LinkState:
    operstate: str
    carrier: bool | None
    """None: the kernel would not say (interface administratively down)."""

    @property
    def up(self) -> bool:
        return self.operstate in _UP_OPERSTATES and self.carrier is True


def link_state_from(operstate: str, carrier: str | None) -> LinkState:
    """Parse the two sysfs values (`carrier` None when unreadable). Pure."""
    value = None if carrier is None else carrier.strip() == "1"
    return LinkState(operstate.strip().lower(), value)


def read_link_state(iface: str, sys_class_net: Path = SYS_CLASS_NET) -> LinkState:
    """The interface's state now. An interface that vanished (a USB modem unplugged) is reported
    as down with operstate "notpresent"; use `check_interface` at start-up to refuse typos."""
    base = sys_class_net / iface
    try:
        operstate = (base / "operstate").read_text()
    except FileNotFoundError:
        return LinkState("notpresent", None)
    try:
        carrier: str | None = (base / "carrier").read_text()
    except OSError:
        carrier = None
    return link_state_from(operstate, carrier)


def check_interface(iface: str, sys_class_net: Path = SYS_CLASS_NET) -> None:
    """Raise LinkStateError if `iface` does not exist here, naming the ones that do."""
    if not (sys_class_net / iface).exists():
        present = sorted(p.name for p in sys_class_net.iterdir()) if sys_class_net.exists() else []
        raise LinkStateError(f"interface {iface!r} does not exist on this host (present: "
                             f"{', '.join(present) or 'none'}); set probe.uplinks[].iface to the ISP's interface")
