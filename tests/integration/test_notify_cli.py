"""`facmon notify test`: one line per integration, delivered or the exact reason; bad configuration
is refused at load naming the key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.config import ConfigError, load_config
from facmon.commands.notify import try_receivers
from tests.integration.notify_standins import TelegramStandIn
from tests.integration.test_rules_notifiers import CaptureServer


def _config(tmp_path: Path, body: str):
    path = tmp_path / "facmon.yaml"
    first = body.split("name: ", 1)[1].split()[0]
    path.write_text(f"rules:\n  store_path: {tmp_path / 'alerts.db'}\n  routes: [{{receiver: {first}}}]\n"
                    f"  receivers:\n{body}", encoding="utf-8")
    return load_config(path, {})


def test_notify_test_prints_delivered_or_the_exact_reason_per_integration(tmp_path):
    telegram = TelegramStandIn()
    hook = CaptureServer()
    (tmp_path / "good-token").write_text(telegram.token + "\n")
    (tmp_path / "bad-token").write_text("123456:REVOKED\n")
    config = _config(tmp_path, f"""
    - name: oncall
      webhooks: ["{hook.url}"]
      telegram:
        - {{chat_ids: ["111"], bot_token_file: {tmp_path / 'good-token'}, api_url: "{telegram.url}"}}
        - {{chat_ids: ["999"], bot_token_file: {tmp_path / 'good-token'}, api_url: "{telegram.url}"}}
        - {{chat_ids: ["111"], bot_token_file: {tmp_path / 'bad-token'}, api_url: "{telegram.url}"}}
      gsm: {{device: {tmp_path / 'no-modem'}, numbers: ["+923001234567"]}}
    - name: quiet
      feed: false
""")
    out = io.StringIO()
    try:
        code = try_receivers(config, "oncall", FakeClock(), out)
    finally:
        telegram.close()
        hook.close()
    lines = out.getvalue().splitlines()
    assert code == 1
    assert lines[0] == "✓ oncall:webhook0: delivered"
    assert lines[1] == "✓ oncall:telegram1: delivered"
    assert lines[2].startswith("✗ oncall:telegram2: Telegram does not know chat 999 (400 Bad Request: chat not found)")
    assert lines[3].startswith("✗ oncall:telegram3: Telegram refused the bot token (401 Unauthorized)")
    assert lines[4].startswith(f"✗ oncall:gsm4: GSM modem {tmp_path / 'no-modem'}: the modem is absent or unplugged")
    assert lines[5] == "✓ oncall:feed5: delivered"
    assert len(lines) == 6
    assert "facmon test message" in telegram.sent[0]["text"] and hook.bodies[0]["alerts"][0]["labels"][
        "alertname"] == "NotifyTest"


def test_notify_test_names_an_unknown_receiver_and_one_with_no_integrations(tmp_path):
    config = _config(tmp_path, "    - name: quiet\n      feed: false\n")
    out = io.StringIO()
    assert try_receivers(config, "oncal", FakeClock(), out) == 2
    assert out.getvalue() == "no receiver named 'oncal'; rules.receivers has: quiet\n"
    out = io.StringIO()
    assert try_receivers(config, "quiet", FakeClock(), out) == 1
    assert "quiet: no integrations" in out.getvalue()


@pytest.mark.parametrize(("body", "message"), [
    ('      sms_gateway: [{url: "http://gw/{phone}", numbers: ["+923001234567"]}]\n',
     "sms_gateway.url uses unknown field(s) phone"),
    ("      sms_gateway: [{url: \"http://gw/\", body: '{{\"to\": {to}}}', numbers: [\"+923001234567\"]}]\n",
     "sms_gateway.body does not give JSON"),
    ('      telegram: [{chat_ids: ["alice"]}]\n', "chat id 'alice' is neither a number"),
    ('      gsm: {device: /dev/ttyUSB2, numbers: ["0300-123"]}\n', "phone number '0300-123' is not a number"),
    ("      failover: {to: [gsm]}\n", "failover.to names gsm, which this receiver does not configure"),
    ('      telegram: [{chat_ids: ["1"], bot_token: "123:abc"}]\n', "secrets do not belong in the config file"),
])
def test_bad_notification_settings_are_refused_at_load_naming_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "    - name: oncall\n" + body)
    assert message in str(err.value) and "rules.receivers" in str(err.value)
