"""Build every facmon dashboard to Grafana JSON: the catalogue, the options, the files.

    build_dashboards(options) -> [BuiltDashboard(uid, title, file_name, model)]
    dashboard_json(built) -> dict          (the JSON Grafana stores; `id` and `version` left to Grafana)
    write_dashboards(options, out_dir) -> [Path]

The output is deterministic (sorted keys, stable panel ids), so the JSON committed under
deploy/grafana/dashboards/ can be checked against a fresh build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

from core.site import Site
from dashboards import alerts, monthly, network, occupancy, overview, power

DEFAULT_TIMEZONE = "Asia/Karachi"


@dataclass(frozen=True)
class DashboardOptions:
    """What varies between installations: the dashboards' time zone and each room's capacity
    (room name → people, from the site descriptions; rooms without one get no capacity line)."""

    timezone: str = DEFAULT_TIMEZONE
    room_capacities: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_sites(cls, sites: list[Site], timezone: str = DEFAULT_TIMEZONE) -> DashboardOptions:
        capacities: dict[str, int] = {}
        for site in sites:
            for sensor in site.occupancy_sensors:
                # Rooms of the same name on two sites share a series name in Grafana; keep the larger.
                capacities[sensor.room] = max(capacities.get(sensor.room, 0), sensor.capacity)
        return cls(timezone, capacities)


@dataclass(frozen=True)
class BuiltDashboard:
    uid: str
    file_name: str
    model: Dashboard

    @property
    def title(self) -> str:
        return self.model.title or self.uid


def build_dashboards(options: DashboardOptions) -> list[BuiltDashboard]:
    """Every dashboard, overview first. Panel ids are numbered 1.. within each dashboard."""
    builders = [
        (overview.UID, overview.build(options.timezone)),
        (power.UID, power.build(options.timezone)),
        (network.UID, network.build(options.timezone)),
        (occupancy.UID, occupancy.build(options.timezone, options.room_capacities)),
        (alerts.UID, alerts.build(options.timezone)),
        (monthly.UID, monthly.build(options.timezone)),
    ]
    built = []
    for uid, builder in builders:
        model = builder.build()
        _number_panels(model)
        built.append(BuiltDashboard(uid, f"{uid.removeprefix('facmon-')}.json", model))
    return built


def _number_panels(model: Dashboard) -> None:
    next_id = 1
    for panel in model.panels or []:
        panel.id_val = next_id
        next_id += 1
        if isinstance(panel, RowPanel):
            for inner in panel.panels or []:
                inner.id_val = next_id
                next_id += 1


def dashboard_json(built: BuiltDashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data (what Grafana's API and provisioning take)."""
    return json.loads(json.dumps(built.model, cls=JSONEncoder))


def render(built: BuiltDashboard) -> str:
    return json.dumps(dashboard_json(built), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(options: DashboardOptions, out_dir: Path) -> list[Path]:
    """Write one `<name>.json` per dashboard into `out_dir` (created if missing); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for built in build_dashboards(options):
        path = out_dir / built.file_name
        path.write_text(render(built), encoding="utf-8")
        paths.append(path)
    return paths
