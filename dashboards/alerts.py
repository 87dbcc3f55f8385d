"""Alerts: every alert transition over time, and the incidents with how long each state lasted.

Reads `facmon_alerts`, which the rules engine writes: one point per transition, tags `alertname`,
`severity`, `site`, `state` (pending/firing/resolved), string field `text`."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as model

from dashboards.panels import (
    ALERTS_MEASUREMENT,
    RED,
    shared_dashboard,
    table_panel,
    table_target,
    target,
    thresholds,
    timeseries_panel,
)

UID = "facmon-alerts"
WHERE = '$timeFilter AND "site" =~ /^$site$/'

TRANSITIONS = (f'SELECT "text", "state", "severity" FROM "{ALERTS_MEASUREMENT}" WHERE {WHERE} '
               'GROUP BY "site", "alertname"')
# Seconds since the same alert's previous transition: on a `resolved` row, how long it fired.
DURATIONS = (f'SELECT elapsed("text", 1s) AS "duration_s" FROM "{ALERTS_MEASUREMENT}" WHERE {WHERE} '
             'GROUP BY "site", "alertname"')
TRANSITIONS_PER_INTERVAL = (f'SELECT count("text") FROM "{ALERTS_MEASUREMENT}" WHERE {WHERE} '
                            'GROUP BY time($__interval), "severity" fill(0)')


def build(timezone: str) -> dashboard_builders.Dashboard:
    incidents = table_panel("Alert transitions and durations (duration: time since that alert's previous "
                            "transition)", [table_target(TRANSITIONS, "A"), table_target(DURATIONS, "B")], 24, 12)
    incidents.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    incidents.override_by_name("duration_s", [model.DynamicConfigValue(id_val="unit", value="s")])
    incidents.sort_by([common_builders.TableSortByFieldState().display_name("time").desc(True)])
    return (
        shared_dashboard(UID, "facmon — Alerts", "Alert transitions (also shown as annotations on every "
                         "time-series panel of every facmon dashboard) and incident durations.",
                         timezone, "now-7d", ["alerts"])
        .with_panel(timeseries_panel("Alert transitions", [target(TRANSITIONS_PER_INTERVAL, alias="$tag_severity")],
                                     "none", 24, 6).thresholds(thresholds((None, RED))))
        .with_panel(incidents)
    )

