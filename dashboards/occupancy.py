"""Occupancy: which rooms are used when, and how close they come to capacity."""

from __future__ import annotations

from collections.abc import Mapping

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as model

from dashboards.panels import (
    AMBER,
    GREEN,
    OCCUPIED,
    RED,
    bar_gauge_panel,
    rows_heatmap_panel,
    shared_dashboard,
    state_timeline_panel,
    tag_variable,
    target,
    thresholds,
    timeseries_panel,
)

UID = "facmon-occupancy"
WHERE = '$timeFilter AND "site" =~ /^$site$/ AND "room" =~ /^$room$/'

OCCUPIED_TIMELINE = (f'SELECT last("occupied") FROM "occupancy" WHERE {WHERE} '
                     'GROUP BY time($__interval), "room" fill(null)')
PEOPLE = f'SELECT max("people") FROM "occupancy" WHERE {WHERE} GROUP BY time($__interval), "room" fill(null)'
# InfluxQL cannot average a boolean, and InfluxDB 1.6 aggregates only the first of several
# subqueries, so utilisation is measured in people: the peak count in each hour of each day.
PEOPLE_BY_HOUR = f'SELECT max("people") FROM "occupancy" WHERE {WHERE} GROUP BY time(1h), "room" fill(0)'
PEAK_PEOPLE = f'SELECT max("people") FROM "occupancy" WHERE {WHERE} GROUP BY "room"'


def build(timezone: str, capacities: Mapping[str, int]) -> dashboard_builders.Dashboard:
    """`capacities` maps room name → capacity (from the site descriptions); each room's bar in
    "Peak vs capacity" then ends at its capacity and turns amber at 80 %, red at 100 %."""
    peak = bar_gauge_panel("Peak people vs capacity", [target(PEAK_PEOPLE, alias="$tag_room")], "none", 24)
    peak.thresholds(thresholds((None, GREEN)))
    for room, capacity in sorted(capacities.items()):
        peak.override_by_name(room, [
            model.DynamicConfigValue(id_val="max", value=capacity),
            model.DynamicConfigValue(id_val="thresholds", value=thresholds(
                (None, GREEN), (0.8 * capacity, AMBER), (capacity, RED)).build()),
        ])
    return (
        shared_dashboard(UID, "facmon — Occupancy", "Per room: occupied periods, people counted, "
                         "utilisation by hour of day and peak against capacity.", timezone, "now-7d", ["occupancy"])
        .with_variable(tag_variable("room", "Room", "occupancy"))
        .with_panel(state_timeline_panel("Occupied", [target(OCCUPIED_TIMELINE, alias="$tag_room")], OCCUPIED,
                                         24, 7))
        .with_panel(timeseries_panel("People counted", [target(PEOPLE, alias="$tag_room")], "none", 24))
        .with_panel(rows_heatmap_panel("Utilisation by hour (peak people in each hour, per room)",
                                       [target(PEOPLE_BY_HOUR, alias="$tag_room")], "none"))
        .with_panel(peak)
    )
