"""The batch publisher's PUBLISH packets are byte for byte what paho itself would send."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.mqtt_batch import BatchClient, encode_publish, remaining_length


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


@settings(max_examples=60, deadline=None)
@given(messages=st.lists(st.tuples(st.sampled_from(["facmon/v1/park/inverter/inv-1/reading", "a/ü/b", "t"]),
                                   st.sampled_from([0, 1, 200, 16_370, 16_400, 70_000]), st.booleans()),
                         min_size=1, max_size=12),
       mqtt5=st.booleans(), first_mid=st.integers(1, 65_535))
@example(messages=[("t", 0, False)] * 3, mqtt5=True, first_mid=65_534)
def test_publish_batch_queues_what_encode_publish_encodes(messages: list[tuple[str, int, bool]], mqtt5: bool,
                                                         first_mid: int) -> None:
    # publish_batch's inlined encoder, as if connected (the write captured, no socket): the packets are
    # in flight in its unacknowledged map and in one write, in order, with consecutive ids from paho's
    # counter (wrapping past 65,535 to 1).
    client = BatchClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311)
    client.configure_batching(FakeClock(0.0), max_inflight=100)
    client._online = True
    written: list[bytes] = []
    client._queue_publishes = written.append  # type: ignore[method-assign]
    client._last_mid = first_mid - 1
    batch = [(topic, bytes([size % 251]) * size, retain) for topic, size, retain in messages]
    client.publish_batch(batch)
    mids = [(first_mid - 1 + i) % 65_535 + 1 for i in range(len(batch))]
    expected = [encode_publish(topic.encode(), payload, mid, retain=retain, mqtt5=mqtt5)
                for (topic, payload, retain), mid in zip(batch, mids, strict=True)]
    assert list(client._unacked) == mids
    assert list(client._unacked.values()) == expected
    assert written == [b"".join(expected)]


@pytest.mark.parametrize(("length", "expected"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                                                  (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
                                                  (268_435_455, b"\xff\xff\xff\x7f")])
def test_remaining_length_is_the_spec_varint(length: int, expected: bytes) -> None:
    assert remaining_length(length) == expected
