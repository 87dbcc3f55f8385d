"""The one configuration model: a YAML file, then `FACMON_*` environment overrides, validated once.

    FACMON_MQTT__HOST=broker.lan      →  mqtt.host
    FACMON_COLLECTOR__SPOOL__DIR=/x   →  collector.spool.dir

Secrets (passwords, tokens) come only from the environment or from `*_file` keys, never from the
YAML itself and never from defaults. `load_config` raises `ConfigError`, whose message has one line
per problem naming the key and why it is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from core.settings.agent import AgentSettings
from core.settings.api import ApiSettings
from core.settings.base import Section
from core.settings.bridge import BridgeSettings
from core.settings.collector import CollectorSettings
from core.settings.dashboards import DashboardsSettings
from core.settings.influxdb import InfluxSettings
from core.settings.local import LocalStackSettings
from core.settings.logging import LogSettings
from core.settings.mqtt import MqttSettings
from core.settings.probe import ProbeSettings
from core.settings.reports import ReportsSettings
from core.settings.rules import RulesSettings
from core.settings.simulate import SimulateSettings
from core.settings.sites import SitesSettings
from core.settings.watchdog import WatchdogSettings
from core.yaml_limits import YamlLimitError, load_yaml

ENV_PREFIX = "FACMON_"


class FacmonConfig(Section):
    sites: SitesSettings = SitesSettings()
    mqtt: MqttSettings = MqttSettings()
    influxdb: InfluxSettings = InfluxSettings()
    collector: CollectorSettings = CollectorSettings()
    rules: RulesSettings = RulesSettings()
    api: ApiSettings = ApiSettings()
    simulate: SimulateSettings = SimulateSettings()
    probe: ProbeSettings = ProbeSettings()
    bridge: BridgeSettings = BridgeSettings()
    agent: AgentSettings = AgentSettings()
    dashboards: DashboardsSettings = DashboardsSettings()
    reports: ReportsSettings = ReportsSettings()
    local: LocalStackSettings = LocalStackSettings()
    log: LogSettings = LogSettings()
    watchdog: WatchdogSettings = WatchdogSettings()


class ConfigError(ValueError):
    """The configuration is invalid; the message names each bad key and why."""


def load_config(path: Path | None, environ: Mapping[str, str]) -> FacmonConfig:
    """Read `path` (optional YAML), apply `FACMON_*` overrides from `environ`, validate."""
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    for dotted in _secret_keys_present(data):
        raise ConfigError(f"{path}: {dotted}: secrets do not belong in the config file; set "
                          f"{ENV_PREFIX}{dotted.upper().replace('.', '__')} or {dotted}_file instead")
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
            _set_dotted(data, key[len(ENV_PREFIX):].lower().split("__"), value)
    try:
        return FacmonConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, path)) from None


STATE_PATHS = ("api.keys_db", "rules.store_path", "collector.spool.dir", "collector.dead_letters.file",
               "bridge.state_file", "watchdog.store_path")
"""What facmon must find again (keys, alert state, spool, seq numbers): by default under
`local.var_dir` (`var/...`), wherever that is."""


def settle_state_paths(config: FacmonConfig, home: Path | None = None) -> FacmonConfig:
    """`config` with every state path left at its default placed under `local.var_dir`, and a default
    `var_dir` placed under `home` (when given: a checkout's demo runs without a configuration file, and
    keeps its state in the checkout's var/ whichever directory a command runs from). Paths set in the
    file or the environment are the user's and stay as given."""
    local = config.local
    if home is not None and "var_dir" not in local.model_fields_set and not local.var_dir.is_absolute():
        config = config.model_copy(update={"local": local.model_copy(update={"var_dir": home / local.var_dir})})
    for dotted in STATE_PATHS:
        config = _under_var_dir(config, dotted.split("."), config.local.var_dir)
    return config


def _under_var_dir(section: BaseModel, parts: list[str], var_dir: Path) -> Any:
    name, rest = parts[0], parts[1:]
    value = getattr(section, name)
    if rest:
        return section.model_copy(update={name: _under_var_dir(value, rest, var_dir)})
    if name in section.model_fields_set:
        return section
    return section.model_copy(update={name: var_dir / value.relative_to(_DEFAULT_VAR)})


_DEFAULT_VAR = Path("var")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror}") from None
    try:
        data = load_yaml(text, what="config file")
    except YamlLimitError as err:
        where = f":{err.line}" if err.line is not None else ""
        raise ConfigError(f"{path}{where}: refused: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of sections (mqtt:, influxdb:, ...)")
    return data


def _secret_field_names(model: type[BaseModel]) -> set[str]:
    """Names of every SecretStr field anywhere in the model tree (passwords, tokens)."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        for arg in (annotation, *get_args(annotation), *(a for t in get_args(annotation) for a in get_args(t))):
            if arg is SecretStr:
                names.add(name)
            elif isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _secret_field_names(arg)
    return names


def _secret_keys_present(data: Any, prefix: str = "") -> list[str]:
    """Dotted paths of secrets written into the config file itself."""
    found: list[str] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        dotted = f"{prefix}{key}"
        if isinstance(key, str) and key in _SECRET_FIELDS and value is not None:
            found.append(dotted)
        found.extend(_secret_keys_present(value, dotted + "."))
    return found


def _set_dotted(data: dict[str, Any], keys: list[str], value: str) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = None if value.lower() in ("null", "none") and keys[-1] not in ("password", "token") else value


def _describe(err: ValidationError, path: Path | None) -> str:
    lines = []
    for problem in err.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/configuration.md)"
        given = problem.get("input")
        shown = "" if problem["type"] in ("extra_forbidden", "missing") or isinstance(given, dict) else (
            f" (got {given!r})" if "password" not in key and "token" not in key else "")
        env_name = ENV_PREFIX + key.upper().replace(".", "__")
        lines.append(f"config: {key}: {message}{shown} [file {path or '-'} or env {env_name}]")
    return "\n".join(lines)


_SECRET_FIELDS = _secret_field_names(FacmonConfig)
