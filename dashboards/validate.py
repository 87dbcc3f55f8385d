"""Is a dashboard JSON a valid Grafana dashboard model? Two checks, one list of problems.

1. **The SDK's model**: the JSON is decoded with grafana-foundation-sdk's `Dashboard.from_json`
   (every panel's options and field config through that panel type's own model, every target
   through `InfluxQLTarget`) and encoded again. A key the model does not know, or a value of the
   wrong shape, does not survive the round trip, so any difference is a problem. The only keys
   allowed through are the InfluxDB annotation's (`panels.ANNOTATION_EXTRA_KEYS`), which the
   SDK's generic annotation model does not describe.
2. **What Grafana needs beyond the schema**: a uid of 1-40 characters, unique panel ids, panels
   inside the 24-column grid and not overlapping, every target on facmon's data source, and every
   `$variable` a query uses defined on the dashboard.

`problems(json) -> list[str]` returns them (empty when valid); `check(json)` raises
`InvalidDashboard` listing them.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.panels import ANNOTATION_EXTRA_KEYS
from dashboards.queries import DATASOURCE_UID, register_influxql_variant, variables_used

GRID_COLUMNS = 24


class InvalidDashboard(ValueError):
    """A dashboard JSON that Grafana would reject or misread; the message lists every problem."""


def _register() -> None:
    plugins.register_default_plugins()
    register_influxql_variant()


def model_problems(data: dict[str, Any]) -> list[str]:
    """Differences between `data` and its round trip through the SDK's dashboard model."""
    _register()
    try:
        decoded = Dashboard.from_json(data)
        again = json.loads(json.dumps(decoded, cls=JSONEncoder))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return [f"does not decode as a Grafana dashboard model: {type(err).__name__}: {err}"]
    original = json.loads(json.dumps(data))
    for annotation in original.get("annotations", {}).get("list", []):
        for key in ANNOTATION_EXTRA_KEYS:
            annotation.pop(key, None)
    return _differences(original, again, "")


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            where = f"{path}.{key}" if path else key
            if key not in actual:
                out.append(f"{where}: not part of Grafana's dashboard model (dropped by the SDK)")
            elif key not in expected:
                continue  # defaults the model fills in are fine
            else:
                out.extend(_differences(expected[key], actual[key], where))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items became {len(actual)}"]
        out = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(_differences(e, a, f"{path}[{index}]"))
        return out
    if expected != actual:
        return [f"{path}: {expected!r} became {actual!r}"]
    return []


def grafana_problems(data: dict[str, Any]) -> list[str]:
    """What Grafana needs that the schema does not say."""
    out = []
    uid = data.get("uid")
    if not isinstance(uid, str) or not 1 <= len(uid) <= 40:
        out.append(f"uid {uid!r}: Grafana needs 1-40 characters")
    if not data.get("title"):
        out.append("title is missing")
    defined = {v.get("name") for v in data.get("templating", {}).get("list", [])}
    seen_ids: set[int] = set()
    cells: dict[tuple[int, int], str] = {}
    for panel in data.get("panels", []):
        title = panel.get("title", "?")
        pid = panel.get("id")
        if pid in seen_ids:
            out.append(f"panel {title!r}: id {pid} is used twice")
        seen_ids.add(pid)
        pos = panel.get("gridPos") or {}
        x, y, w, h = (pos.get(k, 0) for k in ("x", "y", "w", "h"))
        if w <= 0 or h <= 0 or x < 0 or x + w > GRID_COLUMNS:
            out.append(f"panel {title!r}: gridPos {pos} is outside the {GRID_COLUMNS}-column grid")
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                if (cx, cy) in cells:
                    out.append(f"panel {title!r} overlaps panel {cells[(cx, cy)]!r} at ({cx}, {cy})")
                    break
                cells[(cx, cy)] = title
            else:
                continue
            break
        for target in panel.get("targets", []):
            ref = f"panel {title!r} target {target.get('refId')!r}"
            if (target.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                out.append(f"{ref}: data source is not {DATASOURCE_UID!r}")
            for name in variables_used(target.get("query", "")) - defined:
                out.append(f"{ref}: uses ${name}, which the dashboard does not define")
    for annotation in data.get("annotations", {}).get("list", []):
        for name in variables_used(annotation.get("query", "")) - defined:
            out.append(f"annotation {annotation.get('name')!r}: uses ${name}, which the dashboard does not define")
    return out


def problems(data: dict[str, Any]) -> list[str]:
    return model_problems(data) + grafana_problems(data)


def check(data: dict[str, Any]) -> None:
    """Raise `InvalidDashboard` listing every problem of `data`, or return None."""
    found = problems(data)
    if found:
        raise InvalidDashboard(f"dashboard {data.get('uid')!r} is not valid:\n  " + "\n  ".join(found))
