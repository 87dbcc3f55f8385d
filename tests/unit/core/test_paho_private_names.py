"""The collector's and the simulators' fast MQTT paths subclass paho's `Client` and use names paho
does not promise to keep (`_packet_read`, `_in_packet`, `paho.mqtt._packet`, …). pyproject.toml pins
paho to the minor version these were written against; this test fails the day an upgrade drops one,
naming it, instead of the collector failing at its first message (paho 2.1.0 had no `_packet`).

The names are read from the subclasses' source: every `self._name` they use but do not define
themselves, and every `super()._name` (the paho methods they override), must exist on a paho client."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import paho.mqtt.client as mqtt

from core.mqtt_batch import BatchClient
from core.mqtt_buffer import BufferedReadClient, PublishReaderClient

SUBCLASSES = (BufferedReadClient, PublishReaderClient, BatchClient)


def _private_names(cls: type) -> tuple[set[str], set[str], set[str]]:
    """Private names in `cls`'s own source: (read or written as self._x, written as self._x = …,
    called as super()._x)."""
    used: set[str] = set()
    assigned: set[str] = set()
    overridden: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(cls))):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            overridden.add(node.attr)
        elif isinstance(owner, ast.Name) and owner.id == "self":
            used.add(node.attr)
            if isinstance(node.ctx, ast.Store):
                assigned.add(node.attr)
    return used, assigned, overridden


def paho_names_relied_on() -> set[str]:
    """Every private name the subclasses take from paho: what they use but none of them defines, and
    what they call on super() where the next class up is paho's."""
    ours = set().union(*(vars(cls) for cls in SUBCLASSES), *(_private_names(cls)[1] for cls in SUBCLASSES))
    relied: set[str] = set()
    for cls in SUBCLASSES:
        used, _, overridden = _private_names(cls)
        parents_of_ours = [base for base in cls.__mro__[1:] if base in SUBCLASSES]
        relied |= used - ours
        relied |= {name for name in overridden if not any(name in vars(base) for base in parents_of_ours)}
    return relied


def test_every_private_paho_name_the_fast_paths_use_exists_in_the_installed_paho() -> None:
    relied = paho_names_relied_on()
    assert {"_packet_read", "_in_packet", "_packet_queue"} <= relied  # the reading finds them
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="names-check")
    missing = sorted(name for name in relied if not hasattr(client, name))
    assert missing == [], f"the installed paho-mqtt lacks {missing}: pin the version the fast paths were written for"


def test_the_private_paho_modules_the_fast_paths_import_exist() -> None:
    from paho.mqtt import _packet

    assert callable(_packet.decode_connack)
    source = Path(inspect.getsourcefile(BatchClient) or "").read_text(encoding="utf-8")
    assert "from paho.mqtt import _packet" in source  # the import this test stands for
