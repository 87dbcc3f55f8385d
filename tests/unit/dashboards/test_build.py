"""Every dashboard builds to a valid Grafana dashboard model, and the validator catches what Grafana
would reject (so a passing check means something)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from core.site import load_site
from dashboards import validate
from dashboards.build import DashboardOptions, build_dashboards, dashboard_json, render
from dashboards.queries import DATASOURCE_UID

REPO = Path(__file__).resolve().parents[3]
PARK = REPO / "simulators" / "sites" / "park.yaml"
DEPLOYED = REPO / "deploy" / "grafana" / "dashboards"


@pytest.fixture(scope="module")
def built() -> dict[str, dict]:
    options = DashboardOptions.from_sites([load_site(PARK)])
    return {d.uid: dashboard_json(d) for d in build_dashboards(options)}


def test_the_six_dashboards_exist(built: dict[str, dict]) -> None:
    assert list(built) == ["facmon-overview", "facmon-power", "facmon-network", "facmon-occupancy", "facmon-alerts",
                           "facmon-monthly"]


def test_every_dashboard_is_a_valid_grafana_model(built: dict[str, dict]) -> None:
    for uid, data in built.items():
        assert validate.problems(data) == [], uid


def test_local_time_zone_site_variable_and_alert_annotations_everywhere(built: dict[str, dict]) -> None:
    for data in built.values():
        assert data["timezone"] == "Asia/Karachi"
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert variables["site"]["multi"] and variables["site"]["includeAll"]
        assert variables["site"]["allValue"] == ".*"
        [annotation] = data["annotations"]["list"]
        assert "facmon_alerts" in annotation["query"] and annotation["datasource"]["uid"] == DATASOURCE_UID


def test_device_level_variables(built: dict[str, dict]) -> None:
    names = {uid: [v["name"] for v in d["templating"]["list"]] for uid, d in built.items()}
    assert names["facmon-power"] == ["site", "device"]
    assert names["facmon-network"] == ["site", "isp"]
    assert names["facmon-occupancy"] == ["site", "room"]
    assert names["facmon-monthly"] == ["site", "uplink", "battery"]


def test_units_on_number_panels_and_colours_on_every_stat(built: dict[str, dict]) -> None:
    for data in built.values():
        for panel in data["panels"]:
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            if panel["type"] in ("timeseries", "stat", "bargauge"):
                assert defaults.get("unit"), panel["title"]
            if panel["type"] == "stat":
                assert defaults.get("thresholds") or defaults.get("mappings"), panel["title"]


def test_room_capacity_from_the_site_file_caps_the_peak_bar(built: dict[str, dict]) -> None:
    [peak] = [p for p in built["facmon-occupancy"]["panels"] if p["title"] == "Peak people vs capacity"]
    by_room = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
               for o in peak["fieldConfig"]["overrides"]}
    assert by_room["Lab"]["max"] == 30
    assert [s["value"] for s in by_room["Cafeteria"]["thresholds"]["steps"]] == [None, 32.0, 40]


def test_committed_json_is_a_fresh_build() -> None:
    options = DashboardOptions.from_sites([load_site(PARK)])
    for dashboard in build_dashboards(options):
        committed = (DEPLOYED / dashboard.file_name).read_text(encoding="utf-8")
        assert committed == render(dashboard), f"run: facmon dashboards build --site {PARK.relative_to(REPO)}"


# --- the validator has teeth ---------------------------------------------------------------------

def _power(built: dict[str, dict]) -> dict:
    return copy.deepcopy(built["facmon-power"])


def test_validator_reports_keys_outside_the_model(built: dict[str, dict]) -> None:
    data = _power(built)
    data["panels"][0]["colour"] = "red"
    data["panels"][2]["options"]["legendd"] = {}
    assert validate.problems(data) == [
        "panels[0].colour: not part of Grafana's dashboard model (dropped by the SDK)",
        "panels[2].options.legendd: not part of Grafana's dashboard model (dropped by the SDK)",
    ]


def test_validator_reports_builder_mode_targets(built: dict[str, dict]) -> None:
    data = _power(built)
    data["panels"][0]["targets"][0]["rawQuery"] = False
    [problem] = validate.problems(data)
    assert "only raw InfluxQL queries" in problem


def test_validator_reports_grid_overlap_foreign_datasource_and_undefined_variable(built: dict[str, dict]) -> None:
    data = _power(built)
    data["panels"][1]["gridPos"] = dict(data["panels"][0]["gridPos"])
    data["panels"][2]["targets"][0]["datasource"]["uid"] = "other"
    data["panels"][3]["targets"][0]["query"] += ' AND "room" =~ /^$room$/'
    found = validate.problems(data)
    assert "panel 'Power source' overlaps panel 'Grid availability (red bands: outages)' at (0, 0)" in found
    assert "panel 'Battery state of charge' target 'A': data source is not 'facmon-influxdb'" in found
    assert any("uses $room, which the dashboard does not define" in p for p in found)
    with pytest.raises(validate.InvalidDashboard, match="is not valid"):
        validate.check(data)


def test_validator_reports_bad_uid(built: dict[str, dict]) -> None:
    data = _power(built)
    data["uid"] = "x" * 41
    assert validate.grafana_problems(data) == [f"uid {'x' * 41!r}: Grafana needs 1-40 characters"]
