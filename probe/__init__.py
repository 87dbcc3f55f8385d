"""The uplink probe: a real device agent (not a simulator) on the router host that measures each
ISP's uplink and publishes the `uplink` kind of the wire contract, as any device would.

    stats.py     samples of one round → rtt/jitter/loss (pure)
    link.py      link state from /sys/class/net/<iface>
    probers.py   one probe → RTT or lost: ICMP echo, TCP connect, HTTP; source/interface binding
    agent.py     a round per uplink → a contract Reading
    publish.py   the device's MQTT connection: retained online, last will offline, QoS 1

Errors:  ProbeError ─┬─ ProbeSetupError  (cannot probe as configured: say what to change)
                     └─ LinkStateError   (an interface that does not exist)
"""


class ProbeError(RuntimeError):
    """Base of the probe's errors."""


class ProbeSetupError(ProbeError):
    """The probe cannot run as configured (permission, binding, address); the message says what to change."""


class LinkStateError(ProbeError):
    """An interface the configuration names does not exist on this host."""
