"""The bridge stage: foreign MQTT topics (Zigbee2MQTT, Tasmota, SolarAssistant, ...) → contract readings
and statuses republished on `facmon/v1/…`, so the collector, the rules engine and the API see a real
park's devices unchanged.

    mapping.py    the mapping file (YAML, validated with file:line errors) → `BridgeMapping`
    topics.py     topic patterns (`tele/{device}/SENSOR`) → captures, and their subscriptions
    convert.py    one field: JSON path, value table, unit conversion, scale; the device's own time (pure)
    translate.py  one foreign message → `Forward`s and `Dropped`s (pure; the clock and seq are given)
    plans.py      a topic's plan: its readings translated without judging them twice (the fast path)
    gather.py     one-value-per-topic sources: values gathered into one reading per device per interval
    seq.py        a `seq` per device, kept across restarts in a small fsynced state file
    rejects.py    what did not map: counted by reason, the latest listed with a payload excerpt
    service.py    the subscription, the publishing session and the HTTP endpoints, assembled

Errors:  BridgeError ─┬─ MappingError    (the mapping file is wrong: file:line and what to fix)
                      └─ SeqStateError   (the seq state file cannot be read or written)
"""


class BridgeError(RuntimeError):
    """Base of the bridge's errors."""


class MappingError(BridgeError):
    """The mapping file is invalid; the message has one `file:line: key: problem` line per problem."""


class SeqStateError(BridgeError):
    """The seq state file cannot be read or written; the message names the file and what to do."""
