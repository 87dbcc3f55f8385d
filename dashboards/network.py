"""Network: per-ISP latency, jitter, loss and availability — the numbers for an SLA claim."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from dashboards.panels import (
    AMBER,
    GREEN,
    RED,
    UP_DOWN,
    shared_dashboard,
    stat_panel,
    state_timeline_panel,
    table_panel,
    table_target,
    tag_variable,
    target,
    thresholds,
    timeseries_panel,
)

UID = "facmon-network"
WHERE = '$timeFilter AND "site" =~ /^$site$/ AND "isp" =~ /^$isp$/'
BY_ISP = 'GROUP BY time($__interval), "site", "isp" fill(null)'

RTT = f'SELECT mean("rtt_ms") FROM "uplink" WHERE {WHERE} {BY_ISP}'
JITTER = f'SELECT mean("jitter_ms") FROM "uplink" WHERE {WHERE} {BY_ISP}'
LOSS = f'SELECT mean("loss_pct") FROM "uplink" WHERE {WHERE} {BY_ISP}'
# Availability over the whole selected range: the share of probe windows in which at least one probe
# came back (`rtt_ms` is only written then; `loss_pct` is in every reading). A carrier that is up
# but passes no traffic counts as unavailable, which is what an SLA is about.
AVAILABILITY = f'SELECT count("rtt_ms") / count("loss_pct") * 100 FROM "uplink" WHERE {WHERE} GROUP BY "site", "isp"'
SLA_TABLE = (f'SELECT count("rtt_ms") / count("loss_pct") * 100 AS "availability_pct", mean("rtt_ms") AS "rtt_ms", '
             f'mean("jitter_ms") AS "jitter_ms", mean("loss_pct") AS "loss_pct" FROM "uplink" WHERE {WHERE} '
             'GROUP BY "site", "isp"')
# Failover periods: bands where the primary link is down while the backup carries the site.
LINK_TIMELINE = f'SELECT last("link_up") FROM "uplink" WHERE {WHERE} {BY_ISP}'


def build(timezone: str) -> dashboard_builders.Dashboard:
    return (
        shared_dashboard(UID, "facmon — Network", "Per ISP: latency, jitter, loss and availability over the "
                         "selected range (use it for SLA claims); link state shows failover periods.",
                         timezone, "now-7d", ["network"])
        .with_variable(tag_variable("isp", "ISP", "uplink"))
        .with_panel(stat_panel("Availability over the range", [target(AVAILABILITY, alias="$tag_isp")],
                               "percent", 24).decimals(2)
                    .thresholds(thresholds((None, RED), (99, AMBER), (99.9, GREEN))))
        .with_panel(state_timeline_panel("Link state (a down primary with an up backup is a failover)",
                                         [target(LINK_TIMELINE, alias="$tag_isp")], UP_DOWN, 24, 5))
        .with_panel(timeseries_panel("Round-trip time", [target(RTT, alias="$tag_isp")], "ms", 8)
                    .thresholds(thresholds((None, GREEN), (100, AMBER), (300, RED))))
        .with_panel(timeseries_panel("Jitter", [target(JITTER, alias="$tag_isp")], "ms", 8)
                    .thresholds(thresholds((None, GREEN), (30, AMBER), (100, RED))))
        .with_panel(timeseries_panel("Packet loss", [target(LOSS, alias="$tag_isp")], "percent", 8)
                    .min(0).thresholds(thresholds((None, GREEN), (1, AMBER), (5, RED))))
        .with_panel(table_panel("SLA summary for the selected range", [table_target(SLA_TABLE)], 24, 6))
    )
