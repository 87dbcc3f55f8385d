"""core.mqtt_connect: every facmon client logs in and verifies the broker the same way (no broker
needed: what paho was told is read back from the client), and judges a SUBACK the same way."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from core.mqtt_connect import apply_credentials_and_tls, subscriptions_granted
from core.settings.mqtt import MqttSettings


def client() -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t")


def test_password_from_the_environment_or_from_its_file(tmp_path: Path) -> None:
    from_env = client()
    apply_credentials_and_tls(from_env, MqttSettings(username="collector", password="s3cret"))
    assert (from_env._username, from_env._password) == (b"collector", b"s3cret")
    secret = tmp_path / "mqtt-password"
    secret.write_text("from-file\n")
    from_file = client()
    apply_credentials_and_tls(from_file, MqttSettings(username="probe", password_file=secret))
    assert (from_file._username, from_file._password) == (b"probe", b"from-file")


def test_no_username_no_login_and_no_tls_by_default() -> None:
    plain = client()
    apply_credentials_and_tls(plain, MqttSettings())
    assert plain._username is None and plain._ssl_context is None


@pytest.mark.parametrize(("skip_verify", "verify_mode", "check_hostname"),
                         [(False, ssl.CERT_REQUIRED, True), (True, ssl.CERT_NONE, False)])
def test_tls_verifies_the_broker_unless_told_not_to(skip_verify: bool, verify_mode: ssl.VerifyMode,
                                                    check_hostname: bool) -> None:
    tls = client()
    apply_credentials_and_tls(tls, MqttSettings.model_validate(
        {"tls": {"enabled": True, "insecure_skip_verify": skip_verify}}))
    assert tls._ssl_context.verify_mode == verify_mode
    assert tls._ssl_context.check_hostname is check_hostname


def test_a_suback_grants_only_if_every_subscription_is_granted(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.suback")
    granted = ReasonCode(PacketTypes.SUBACK, identifier=1)  # granted QoS 1
    refused = ReasonCode(PacketTypes.SUBACK, identifier=0x87)  # not authorized
    with caplog.at_level(logging.INFO, logger="test.suback"):
        assert subscriptions_granted([granted, granted], ["a/#", "b/#"], log)
        assert not subscriptions_granted([granted, refused], ["a/#", "b/#"], log)
    [refusal] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert refusal.reasons == ["Not authorized"] and refusal.topics == ["a/#", "b/#"]
