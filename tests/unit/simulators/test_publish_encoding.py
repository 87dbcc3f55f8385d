"""The batch publisher's PUBLISH packets are byte for byte what paho itself would send."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.mqtt_batch import encode_publish, remaining_length


def paho_publish_bytes(protocol: mqtt.MQTTProtocolVersion, topic: bytes, payload: bytes, mid: int,
                       retain: bool, dup: bool) -> bytes:
    """What paho 2.x queues for `publish(qos=1)`: its own encoder, run on a client with a socket
    that is never written to (a registered write callback keeps paho from sending)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
    client.on_socket_register_write = lambda *_: None
    left, right = socket.socketpair()
    try:
        client._sock = left  # paho encodes only with a socket present
        client._send_publish(mid, topic, payload, 1, retain, dup)
        return bytes(client._out_packet[-1]["packet"])
    finally:
        client._sock = None
        left.close()
        right.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
@pytest.mark.parametrize(("payload_size", "retain", "dup"),
                         [(0, False, False), (7, True, False), (120, False, True), (240, False, False),
                          (20_000, True, True), (2_100_000, False, False)])
def test_encoding_matches_paho(protocol: mqtt.MQTTProtocolVersion, payload_size: int, retain: bool,
                               dup: bool) -> None:
    # Payload sizes cross every remaining-length width: 1, 2, 3 bytes.
    topic = b"facmon/v1/park/inverter/inv-1/reading"
    payload = bytes(range(256)) * (payload_size // 256) + bytes(payload_size % 256)
    mine = encode_publish(topic, payload, 4242, retain=retain, mqtt5=protocol == mqtt.MQTTv5, dup=dup)
    assert mine == paho_publish_bytes(protocol, topic, payload, 4242, retain, dup)


@settings(max_examples=150, deadline=None)
@given(topic=st.text(st.characters(blacklist_characters="+#\0", blacklist_categories=("Cs",)), min_size=1,
                     max_size=80),
       payload=st.binary(max_size=400), mid=st.integers(1, 65_535), retain=st.booleans(), dup=st.booleans(),
       mqtt5=st.booleans())
def test_encoding_matches_paho_for_any_message(topic: str, payload: bytes, mid: int, retain: bool, dup: bool,
                                               mqtt5: bool) -> None:
    protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
    encoded = topic.encode()
    assert encode_publish(encoded, payload, mid, retain=retain, mqtt5=mqtt5, dup=dup) == \
        paho_publish_bytes(protocol, encoded, payload, mid, retain, dup)


@pytest.mark.parametrize(("length", "expected"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                                                  (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
                                                  (268_435_455, b"\xff\xff\xff\x7f")])
def test_remaining_length_is_the_spec_varint(length: int, expected: bytes) -> None:
    assert remaining_length(length) == expected
