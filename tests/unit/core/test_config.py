"""core.config.load_config: YAML then FACMON_* overrides, one line per bad key naming it and why,
secrets refused in the file, YAML errors located at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from docs.generate import CONFIG_SECTIONS, config_table, render


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "facmon.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, {})
    assert (config.mqtt.host, config.mqtt.port, config.influxdb.api) == ("127.0.0.1", 1883, "v1")


def test_wrong_value_gives_one_line_naming_the_key_and_the_env_var(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_yaml(tmp_path, "mqtt:\n  port: 70000\n"), {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config: mqtt.port: Input should be less than or equal to 65535 (got 70000)")
    assert "FACMON_MQTT__PORT" in message and str(tmp_path / "facmon.yaml") in message


def test_each_bad_key_gets_its_own_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"FACMON_MQTT__PORT": "x", "FACMON_COLLECTOR__SPOOL__MAX_BYTES": "1"})
    lines = str(caught.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["mqtt.port", "collector.spool.max_bytes"]


def test_typo_in_a_key_is_an_unknown_key_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: influxdb\.urll: unknown key \(check the spelling"):
        load_config(_yaml(tmp_path, "influxdb:\n  urll: http://x:8086\n"), {})


@pytest.mark.parametrize(("section", "key", "env"), [("mqtt", "password", "FACMON_MQTT__PASSWORD"),
                                                     ("influxdb", "token", "FACMON_INFLUXDB__TOKEN"),
                                                     ("influxdb", "password", "FACMON_INFLUXDB__PASSWORD")])
def test_secrets_in_the_yaml_file_are_refused(tmp_path: Path, section: str, key: str, env: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_yaml(tmp_path, f"{section}:\n  {key}: hunter2\n"), {})
    expected = f"{section}.{key}: secrets do not belong in the config file; set {env} or {section}.{key}_file"
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_secret_from_environment_is_accepted_and_never_echoed() -> None:
    config = load_config(None, {"FACMON_MQTT__PASSWORD": "hunter2"})
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)


def test_environment_overrides_nest_and_win_over_the_file(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "mqtt:\n  host: from-file\n  port: 1884\ncollector:\n  spool:\n    max_bytes: 1000000\n")
    config = load_config(path, {"FACMON_MQTT__HOST": "broker.lan", "FACMON_COLLECTOR__SPOOL__DIR": "/data/spool",
                                "FACMON_COLLECTOR__DECODE__MAX_AGE_S": "60", "FACMON_CONFIG": "ignored.yaml",
                                "OTHER": "x"})
    assert (config.mqtt.host, config.mqtt.port) == ("broker.lan", 1884)
    assert config.collector.spool.dir == Path("/data/spool") and config.collector.spool.max_bytes == 1_000_000
    assert config.collector.decode.max_age_s == 60.0


def test_null_in_environment_turns_an_option_off() -> None:
    assert load_config(None, {"FACMON_COLLECTOR__HTTP_LISTEN": "null"}).collector.http_listen is None


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "mqtt:\n  host: a\n  port: [1883\n")
    with pytest.raises(ConfigError, match=rf"^{path}:4:1: not valid YAML"):
        load_config(path, {})


def test_config_file_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(_yaml(tmp_path, "- mqtt\n"), {})


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file: No such file"):
        load_config(tmp_path / "absent.yaml", {})


# --- docs/configuration.md cannot drift from the settings models ------------------------------------------------

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_configuration_doc_tables_match_the_models() -> None:
    assert render(DOC) == DOC.read_text(encoding="utf-8"), "run: .venv/bin/python -m docs.generate"


def test_configuration_doc_lists_every_key_with_default_and_env_var() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert ("| `collector.decode.max_future_s` | float, ≥ 0 | `300.0` | `FACMON_COLLECTOR__DECODE__MAX_FUTURE_S` |"
            in text)
    for section in CONFIG_SECTIONS:
        assert config_table(section) in text
    assert "| `influxdb.token` | SecretStr \\| null | — (environment or `_file` only) |" in text


def test_configuration_doc_example_is_a_valid_config(tmp_path: Path) -> None:
    example = DOC.read_text(encoding="utf-8").split("```yaml\n", 1)[1].split("```", 1)[0]
    config = load_config(_yaml(tmp_path, example), {})
    assert (config.influxdb.api, config.collector.mqtt.shared_group,
            config.collector.decode.max_age_s) == ("v2", "facmon", 7_776_000.0)


def test_secrets_anywhere_in_the_file_are_refused_with_the_key_and_the_way_to_set_them(tmp_path) -> None:
    from core.config import ConfigError, load_config

    config_file = tmp_path / "facmon.yaml"
    config_file.write_text("dashboards:\n  grafana_token: abc\n")
    try:
        load_config(config_file, {})
    except ConfigError as err:
        assert "dashboards.grafana_token" in str(err) and "FACMON_DASHBOARDS__GRAFANA_TOKEN" in str(err)
    else:
        raise AssertionError("a token in the config file must be refused")
    config_file.write_text("rules:\n  receivers:\n    - name: oncall\n      email:\n        host: smtp\n"
                           "        to: [a@b.c]\n        password: hunter2\n")
    try:
        load_config(config_file, {})
    except ConfigError as err:
        assert "rules.receivers.0.email.password" in str(err)
    else:
        raise AssertionError("a password nested in a list must be refused too")


def test_session_keys_of_earlier_versions_under_mqtt_name_the_key_that_replaces_them(tmp_path: Path) -> None:
    """The broker's identity is shared; each stage's session is its own (collector.mqtt.*)."""
    from core.config import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(_yaml(tmp_path, "mqtt:\n  host: broker\n  shared_group: facmon\n  client_id: c1\n"), {})
    message = str(caught.value)
    assert "mqtt.shared_group is now collector.mqtt.shared_group" in message
    assert "mqtt.client_id is now collector.mqtt.client_id" in message
    config = load_config(_yaml(tmp_path, "collector:\n  mqtt:\n    shared_group: facmon\n"),
                         {"FACMON_COLLECTOR__MQTT__CLIENT_ID": "c2"})
    assert (config.collector.mqtt.shared_group, config.collector.mqtt.client_id) == ("facmon", "c2")
