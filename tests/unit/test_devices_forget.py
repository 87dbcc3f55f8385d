"""`facmon devices forget SITE/KIND/DEVICE`: the device given is checked as its status topic would be
(core.contract.parse_topic), and bad input is refused naming the part to fix."""

from __future__ import annotations

import pytest

from core.contract import DeviceKey, Kind
from facmon.commands.devices import parse_device


def test_a_device_is_its_site_kind_and_id() -> None:
    assert parse_device("park/inverter/inv-9") == DeviceKey("park", Kind.INVERTER, "inv-9")


@pytest.mark.parametrize(("text", "message"), [
    ("park/inv-9", r"give the device as SITE/KIND/DEVICE"),
    ("park/inverter/inv/9", r"give the device as SITE/KIND/DEVICE"),
    ("Park/inverter/inv-9", r"site id 'Park' does not match"),
    ("park/toaster/inv-9", r"kind 'toaster' is not one of inverter, "),
    ("park/inverter/+", r"device id '\+' does not match"),
    ("park/inverter/", r"device id '' does not match"),
])
def test_a_bad_device_is_refused_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_device(text)
