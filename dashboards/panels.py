"""Panel and variable building blocks shared by facmon's dashboards.

Each function returns a grafana-foundation-sdk builder already pointed at facmon's InfluxDB data
source, so a dashboard module reads as a list of questions a facility manager asks ("what powers
the site now?") with the query that answers each. Colours follow one convention everywhere:
green = fine, amber (`orange`) = degraded or running on reserve, red = act now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap as heatmap_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model

from dashboards.queries import ALL_VALUE, DATASOURCE, InfluxQLTarget

GREEN, AMBER, RED, BLUE, GREY = "green", "orange", "red", "blue", "text"

ALERTS_MEASUREMENT = "facmon_alerts"

# Value mappings: booleans arrive from InfluxDB as true/false, modes as text.
UP_DOWN = [model.ValueMap(options={
    "true": model.ValueMappingResult(text="up", color=GREEN, index=0),
    "false": model.ValueMappingResult(text="down", color=RED, index=1),
})]
GRID_OK = [model.ValueMap(options={
    "true": model.ValueMappingResult(text="grid on", color=GREEN, index=0),
    "false": model.ValueMappingResult(text="outage", color=RED, index=1),
})]
OCCUPIED = [model.ValueMap(options={
    "true": model.ValueMappingResult(text="occupied", color=BLUE, index=0),
    "false": model.ValueMappingResult(text="free", color=GREY, index=1),
})]
POWER_SOURCE = [model.ValueMap(options={
    "grid": model.ValueMappingResult(text="grid", color=GREEN, index=0),
    "solar": model.ValueMappingResult(text="solar", color=GREEN, index=1),
    "battery": model.ValueMappingResult(text="battery", color=AMBER, index=2),
    "bypass": model.ValueMappingResult(text="bypass", color=AMBER, index=3),
    "fault": model.ValueMappingResult(text="fault", color=RED, index=4),
    "generator": model.ValueMappingResult(text="generator", color=AMBER, index=5),
})]
RELAY_ON = [model.ValueMap(options={
    "true": model.ValueMappingResult(text="on", color=GREEN, index=0),
    "false": model.ValueMappingResult(text="switched off", color=RED, index=1),
})]
GENERATOR_STATE = [model.ValueMap(options={
    "off": model.ValueMappingResult(text="off", color=GREEN, index=0),
    "cranking": model.ValueMappingResult(text="cranking", color=AMBER, index=1),
    "running": model.ValueMappingResult(text="running", color=AMBER, index=2),
    "cooldown": model.ValueMappingResult(text="cool-down", color=AMBER, index=3),
    "fail_to_start": model.ValueMappingResult(text="FAILED TO START", color=RED, index=4),
})]


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (from minus infinity)."""
    return (dashboard_builders.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=value, color=color) for value, color in steps]))


def target(query: str, ref_id: str = "A", alias: str | None = None) -> InfluxQLTarget:
    return InfluxQLTarget(query, ref_id, "time_series", alias)


def table_target(query: str, ref_id: str = "A") -> InfluxQLTarget:
    return InfluxQLTarget(query, ref_id, "table")


Panel = TypeVar("Panel", stat.Panel, timeseries.Panel, statetimeline.Panel, table.Panel, bargauge.Panel,
                heatmap.Panel)


def _with_targets(panel: Panel, targets: Sequence[InfluxQLTarget]) -> Panel:
    for t in targets:
        panel.with_target(t)
    return panel


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(title: str, targets: Sequence[InfluxQLTarget], unit: str = "none", width: int = 4,
               height: int = 4) -> stat.Panel:
    """The latest value of each series, coloured by the panel's thresholds or mappings."""
    panel = (stat.Panel().title(title).datasource(DATASOURCE).unit(unit).span(width).height(height)
             .reduce_options(_last_value()).color_mode(common.BigValueColorMode.BACKGROUND)
             .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME))
    return _with_targets(panel, targets)


def timeseries_panel(title: str, targets: Sequence[InfluxQLTarget], unit: str, width: int = 12,
                     height: int = 8) -> timeseries.Panel:
    """A line chart; dashboard annotations (alert transitions) show on it automatically."""
    panel = (timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit).span(width).height(height)
             .line_width(1).fill_opacity(10).span_nulls(False)
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True)))
    return _with_targets(panel, targets)


def state_timeline_panel(title: str, targets: Sequence[InfluxQLTarget], mappings: list[model.ValueMapping],
                         width: int = 24, height: int = 6) -> statetimeline.Panel:
    """Bands over time: outages, failovers, occupied periods."""
    panel = (statetimeline.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
             .mappings(mappings).merge_values(True).show_value(common.VisibilityMode.AUTO)
             .fill_opacity(80).line_width(0))
    return _with_targets(panel, targets)


def table_panel(title: str, targets: Sequence[InfluxQLTarget], width: int = 24, height: int = 8) -> table.Panel:
    panel = table.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
    return _with_targets(panel, targets)


def bar_gauge_panel(title: str, targets: Sequence[InfluxQLTarget], unit: str, width: int = 12,
                    height: int = 8) -> bargauge.Panel:
    panel = (bargauge.Panel().title(title).datasource(DATASOURCE).unit(unit).span(width).height(height)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["max"]).values(False))
             .display_mode(common.BarGaugeDisplayMode.GRADIENT)
             .orientation(common.VizOrientation.HORIZONTAL))
    return _with_targets(panel, targets)


def rows_heatmap_panel(title: str, targets: Sequence[InfluxQLTarget], unit: str, width: int = 24,
                       height: int = 9) -> heatmap.Panel:
    """A heatmap whose rows are the series (one per room) and whose cells are the query's time
    buckets: Grafana's built-in heatmap, no plugin needed."""
    panel = (heatmap.Panel().title(title).datasource(DATASOURCE).span(width).height(height).calculate(False)
             .rows_frame(heatmap_builders.RowsHeatmapOptions().layout(common.HeatmapCellLayout.UNKNOWN))
             .color(heatmap_builders.HeatmapColorOptions().mode(heatmap_model.HeatmapColorMode.SCHEME).scheme("Oranges")
                    .steps(64).min(0).max(100).exponent(0.5).reverse(False).fill(AMBER)
                    .scale(heatmap_model.HeatmapColorScale.LINEAR))
             .y_axis(heatmap_builders.YAxisConfig().unit(unit))
             .cell_gap(1))
    return _with_targets(panel, targets)



# --- template variables --------------------------------------------------------------------------

def _tag_variable(name: str, label: str, query: str) -> dashboard_builders.QueryVariable:
    return (dashboard_builders.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
            .multi(True).include_all(True).all_value(ALL_VALUE)
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))


def site_variable() -> dashboard_builders.QueryVariable:
    """`$site`: every site that has written anything (the tag exists on every measurement)."""
    return _tag_variable("site", "Site", 'SHOW TAG VALUES WITH KEY = "site"')


def tag_variable(name: str, label: str, measurement: str) -> dashboard_builders.QueryVariable:
    """`$device`, `$isp`, `$room`: the values of tag `name` in `measurement` at the chosen sites."""
    return _tag_variable(name, label,
                         f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{name}" WHERE "site" =~ /^$site$/')


# --- alert transitions as annotations -------------------------------------------------------------

ALERT_ANNOTATION_QUERY = (f'SELECT "text", "alertname", "severity", "state" FROM "{ALERTS_MEASUREMENT}" '
                          'WHERE $timeFilter AND "site" =~ /^$site$/')


class InfluxAnnotationQuery(model.AnnotationQuery):
    """An InfluxDB annotation in the form Grafana's InfluxDB data source reads (and migrates into
    its query editor): the InfluxQL text and which columns are the text and the tags. The SDK's
    AnnotationQuery model has no fields for these, so they are added here."""

    def __init__(self, name: str, query: str, text_column: str, tags_column: str, icon_color: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, hide=False, icon_color=icon_color)
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(query=self.query, textColumn=self.text_column, tagsColumn=self.tags_column)
        return payload


ANNOTATION_EXTRA_KEYS = ("query", "textColumn", "tagsColumn")
"""Keys of `InfluxAnnotationQuery` that the SDK's model does not know (validation allows them)."""


class _Built(dashboard_builders.AnnotationQuery):
    def __init__(self, annotation: InfluxAnnotationQuery) -> None:
        self._internal = annotation


def alerts_annotation() -> dashboard_builders.AnnotationQuery:
    """Alert transitions (pending/firing/resolved) from `facmon_alerts`, on every time-series panel."""
    return _Built(InfluxAnnotationQuery("Alerts", ALERT_ANNOTATION_QUERY, "text", "alertname,severity,state", RED))


def shared_dashboard(uid: str, title: str, description: str, timezone: str, time_from: str,
                     tags: Sequence[str] = ()) -> dashboard_builders.Dashboard:
    """The frame every facmon dashboard shares: uid, local time zone, refresh, the site variable and
    the alert annotations."""
    return (dashboard_builders.Dashboard(title).uid(uid).description(description).tags(["facmon", *tags])
            .timezone(timezone).time(time_from, "now").refresh("1m").readonly()
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .annotation(alerts_annotation()).with_variable(site_variable()))
