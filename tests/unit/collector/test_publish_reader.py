"""core.mqtt_buffer.PublishReaderClient: the direct reader of QoS 1 PUBLISHes in the read buffer
takes exactly the complete, plain ones at the read position and leaves everything else — another
packet type, MQTT 5 properties, a packet cut by the end of the buffer — to paho's own reader, at the
right position. No broker: the buffer is set by hand (the integration tests run the real thing)."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from collector.mqtt_source import AckRun, InboundBatch
from core.mqtt_buffer import PublishReaderClient


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, mid: int, *, v5: bool, properties: bytes = b"", flags: int = 0) -> bytes:
    topic_bytes = topic.encode()
    body = len(topic_bytes).to_bytes(2, "big") + topic_bytes + mid.to_bytes(2, "big")
    if v5:
        body += bytes([len(properties)]) + properties
    body += payload
    return bytes([0x32 | flags]) + remaining_length(len(body)) + body


def reader(buffer: bytes, *, v5: bool) -> tuple[PublishReaderClient, list[tuple[str, bytes, int]]]:
    client = PublishReaderClient(mqtt.CallbackAPIVersion.VERSION2, client_id="t",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=True)
    got: list[tuple[str, bytes, int]] = []
    client.on_qos1_publishes = lambda topics, payloads, mids: got.extend(zip(topics, payloads, mids, strict=True))
    client._rx, client._rx_pos = buffer, 0
    return client, got


@pytest.mark.parametrize("v5", [False, True])
def test_takes_every_complete_publish_including_long_ones_dup_and_retain(v5: bool) -> None:
    messages = [("facmon/v1/a/inverter/i1/reading", b'{"x":1}', 1),
                ("facmon/v1/a/inverter/i2/reading", b"y" * 300, 2),  # two-byte remaining length
                ("facmon/v1/a/uplink/w\u00e9/reading", b"z" * 20_000, 65535)]  # three bytes
    buffer = b"".join(publish(t, p, m, v5=v5, flags=f) for (t, p, m), f in zip(messages, (0, 0x08, 0x01), strict=True))
    client, got = reader(buffer, v5=v5)
    assert client._take_buffered_publishes() == 3
    assert got == messages
    assert not client.has_buffered_input()


@pytest.mark.parametrize("v5", [False, True])
def test_stops_at_a_packet_cut_by_the_end_of_the_buffer(v5: bool) -> None:
    first = publish("t/1", b"one", 7, v5=v5)
    second = publish("t/2", b"two" * 100, 8, v5=v5)
    for cut in range(1, len(second)):
        client, got = reader(first + second[:cut], v5=v5)
        assert client._take_buffered_publishes() == 1, cut
        assert got == [("t/1", b"one", 7)]
        assert client._rx_pos == len(first)  # paho's reader continues with the cut packet


def test_leaves_other_packets_and_qos_0_to_paho() -> None:
    pingresp = b"\xd0\x00"
    qos0 = b"\x30" + remaining_length(5) + b"\x00\x03t/0"
    for other in (pingresp, qos0):
        client, got = reader(publish("t/1", b"a", 1, v5=False) + other + publish("t/2", b"b", 2, v5=False), v5=False)
        assert client._take_buffered_publishes() == 1
        assert got == [("t/1", b"a", 1)]
        assert client._rx[client._rx_pos:].startswith(other)


def test_mqtt5_publish_with_properties_is_left_to_paho() -> None:
    alias = b"\x23\x00\x01"  # topic alias 1
    plain = publish("t/1", b"a", 1, v5=True)
    client, got = reader(plain + publish("t/2", b"b", 2, v5=True, properties=alias), v5=True)
    assert client._take_buffered_publishes() == 1
    assert got == [("t/1", b"a", 1)] and client._rx_pos == len(plain)


def test_undecodable_topic_is_left_to_paho() -> None:
    bad = b"\x32" + remaining_length(7) + b"\x00\x03\xff\xfe\xfd\x00\x09"
    client, got = reader(bad, v5=False)
    assert client._take_buffered_publishes() == 0
    assert got == [] and client._rx_pos == 0


def test_malformed_remaining_length_is_left_to_paho() -> None:
    client, got = reader(b"\x32\xff\xff\xff\xff\x01" + b"x" * 10, v5=False)
    assert client._take_buffered_publishes() == 0
    assert got == [] and client._rx_pos == 0


def test_a_part_of_a_batch_keeps_its_acks_with_its_messages() -> None:
    batch = InboundBatch(["a", "b", "c"], [b"1", b"2", b"3"], AckRun(4, [7, 8, 9]))
    assert batch.part(1) == InboundBatch(["b", "c"], [b"2", b"3"], AckRun(4, [8, 9]))
    assert batch.part(0, 1) == InboundBatch(["a"], [b"1"], AckRun(4, [7]))
    assert InboundBatch(["a", "b"], [b"1", b"2"], None).part(1) == InboundBatch(["b"], [b"2"], None)
