"""The engine's own health, against a real Mosquitto: /metrics (outbox depth, sent and failed per
integration), /readyz (503 naming why while the broker is gone), a critical alert failing over from
a dead webhook to SMS, and "every integration of a receiver failed" itself notified by SMS and feed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt

from core.contract import DeviceKey, Kind
from core.settings.mqtt import MqttSettings
from core.settings.rules import ReceiverSettings, RouteSettings, RulesSettings
from core.settings.sites import SitesSettings
from facmon.servers import free_port
from rules.model import load_rule_files
from rules.service import RulesService
from tests.integration.notify_standins import SmsAggregatorStandIn
from tests.integration.test_rules_service import CLOCK, PACK, _inverter
from tests.support import poll_until


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_failover_metrics_readiness_and_channels_down(tmp_path, mosquitto):
    sms = SmsAggregatorStandIn()
    pack_file = tmp_path / "pack.yaml"
    pack_file.write_text(PACK)
    dead_hook = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: as when the uplinks are cut
    receiver = ReceiverSettings.model_validate({
        "name": "oncall", "webhooks": [dead_hook],
        "sms_gateway": [{"url": sms.url + "/send", "numbers": ["+923001234567"]}],
        "failover": {"after_s": 0, "to": ["sms_gateway"]}})
    settings = RulesSettings(
        rule_files=[pack_file], store_path=tmp_path / "alerts.db", evaluation_interval_s=0.2, write_influx=False,
        receivers=[receiver], channels_down_after_s=1.0,
        routes=[RouteSettings(receiver="oncall", group_wait_s=0, group_interval_s=0, repeat_interval_s=3600)])
    service = RulesService.from_settings(settings, MqttSettings(host="127.0.0.1", port=mosquitto.port,
                                                                reconnect_min_s=0.2, reconnect_max_s=0.5),
                                         CLOCK, None, load_rule_files([pack_file]), SitesSettings())
    service.start()
    port = service.start_http("127.0.0.1:0")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-fault")
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        poll_until(lambda: _get(port, "/readyz")[0] == 200, 15, what="the engine ready")
        topic = DeviceKey("park", Kind.INVERTER, "inv-a").reading_topic()
        publisher.publish(topic, _inverter("inv-a", 1, mode="fault"), qos=1).wait_for_publish(5)
        poll_until(lambda: sms.received, 15, what="the InverterFault by SMS after the webhook failed")
        assert sms.received[0][1]["message"].startswith("FIRING park: 1 alert(s)\ncritical InverterFault inv-a")
        # Every integration of oncall (the webhook; SMS is its failover) has failed for 1 s: said by SMS too.
        down = poll_until(lambda: [m for _, m in sms.received if "NotificationChannelsDown" in m["message"]], 15,
                          what="the channels-down notification")
        assert len(down) == 1
        feed = service._store.feed()
        assert any("NotificationChannelsDown" in e.title + e.body for e in feed)
        assert any("InverterFault" in e.body for e in feed)

        status, metrics = _get(port, "/metrics")
        assert status == 200
        assert 'facmon_rules_notifications_failed_total{integration="oncall:webhook0"} 1.0' in metrics
        assert 'facmon_rules_notifications_sent_total{integration="oncall:sms_gateway1"} 2.0' in metrics
        assert "facmon_rules_outbox_depth 0.0" in metrics
        assert "facmon_rules_ready 1.0" in metrics

        mosquitto.stop()
        status, body = poll_until(lambda: (lambda r: r if r[0] == 503 else None)(_get(port, "/readyz")), 10,
                                  what="not ready without the broker")
        assert json.loads(body)["reasons"] == ["not subscribed to the MQTT broker (see mqtt.* and the broker's log)"]
        mosquitto.start()
        mosquitto.wait_ready(10)
        poll_until(lambda: _get(port, "/readyz")[0] == 200, 15, what="ready again")
    finally:
        publisher.loop_stop()
        service.stop()
        sms.close()
    rows = {r.receiver: r.status for r in service._store.notifications() if "InverterFault" in json.dumps(r.payload)}
    assert rows == {"oncall:webhook0": "failed_over", "oncall:sms_gateway1": "sent", "oncall:feed2": "sent"}
