"""The deployment files parse and agree with each other: provisioning points Grafana at the data
source uid the dashboards use and at the directory compose mounts the built JSON into; the
compose file has every service with a health check; the systemd units verify."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboards.queries import DATASOURCE_UID

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _yaml(path: str) -> dict:
    return yaml.safe_load((DEPLOY / path).read_text(encoding="utf-8"))


def _compose() -> dict:
    return _yaml("docker-compose.yml")


def test_datasource_provisioning_matches_the_dashboards() -> None:
    doc = _yaml("grafana/provisioning/datasources/facmon.yaml")
    assert doc["apiVersion"] == 1
    [source] = doc["datasources"]
    assert (source["uid"], source["type"], source["jsonData"]["version"]) == (DATASOURCE_UID, "influxdb", "InfluxQL")
    # Every ${VAR} the file uses is set on the grafana service.
    used = set(re.findall(r"\$\{(\w+)\}", (DEPLOY / "grafana/provisioning/datasources/facmon.yaml").read_text()))
    assert used <= set(_compose()["services"]["grafana"]["environment"])


def test_dashboard_provider_reads_where_compose_mounts_the_built_json() -> None:
    [provider] = _yaml("grafana/provisioning/dashboards/facmon.yaml")["providers"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in _compose()["services"]["grafana"]["volumes"]}
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert sorted(p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")) == [
        "alerts.json", "monthly.json", "network.json", "occupancy.json", "overview.json", "power.json"]


def test_compose_services_have_health_checks_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana", "collector", "rules", "api"}
    for name, service in services.items():
        assert "healthcheck" in service or "healthcheck" in compose.get("x-facmon", {}), name
    for name in ("mosquitto", "influxdb", "grafana"):
        assert any(not v.startswith(".") for v in services[name]["volumes"]), f"{name} keeps data in a volume"
    mosquitto_mounts = " ".join(services["mosquitto"]["volumes"])
    assert "./mosquitto/facmon-broker.conf:/mosquitto/config/conf.d/" in mosquitto_mounts


def test_production_mosquitto_conf_refuses_anonymous_and_includes_the_broker_tuning() -> None:
    lines = [line.split() for line in (DEPLOY / "mosquitto/mosquitto.conf").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    settings = {words[0]: words[1:] for words in lines}
    assert settings["allow_anonymous"] == ["false"]
    assert settings["password_file"] and settings["acl_file"]
    assert settings["include_dir"] == ["/mosquitto/config/conf.d"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        # The venv does not exist here: point ExecStart at a binary that does; check the rest.
        text = unit.read_text().replace("/opt/facmon/venv/bin/facmon", "/bin/true")
        copy = tmp_path / unit.name
        copy.write_text(text)
        result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True,
                                timeout=30)
        problems = [line for line in result.stderr.splitlines() if unit.name in line]
        assert problems == [], problems


COMPOSE_COMMANDS = [c for c in (["docker", "compose"], ["docker-compose"]) if shutil.which(c[0]) and subprocess.run(
    [*c, "version"], capture_output=True, timeout=30).returncode == 0]


@pytest.mark.skipif(not COMPOSE_COMMANDS, reason="neither `docker compose` nor `docker-compose` is installed")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Schema and interpolation only: `config` needs no engine (there is none on this machine)."""
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns("dashboards"))
    (deploy / ".env").write_text("INFLUXDB_ADMIN_PASSWORD=x\nFACMON_INFLUXDB__TOKEN=y\nGRAFANA_ADMIN_PASSWORD=z\n")
    result = subprocess.run([*COMPOSE_COMMANDS[0], "-f", str(deploy / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60, cwd=deploy)
    assert result.returncode == 0, result.stderr
    (deploy / ".env").write_text("FACMON_INFLUXDB__TOKEN=y\n")
    missing = subprocess.run([*COMPOSE_COMMANDS[0], "-f", str(deploy / "docker-compose.yml"), "config", "--quiet"],
                             capture_output=True, text=True, timeout=60, cwd=deploy)
    assert missing.returncode != 0 and "INFLUXDB_ADMIN_PASSWORD" in missing.stderr
