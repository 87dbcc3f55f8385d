"""A report as data: what render.py turns into HTML, CSV and PDF and the API serves as JSON. One
shape for the three reports, so one renderer serves them all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    name: str
    """File-name stem of its CSV (`outages`)."""
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Chart:
    """A bar chart (stacked when `stacked`) or lines, one value per label in `x` for each series."""

    name: str
    title: str
    x: tuple[str, ...]
    series: Mapping[str, tuple[float | None, ...]]
    y_label: str
    style: str = "bars"
    """"bars", "stacked" or "lines"."""


@dataclass(frozen=True)
class ReportDocument:
    kind: str
    """isp, energy or battery."""
    title: str
    site_id: str
    site_name: str
    month: str
    timezone: str
    summary: tuple[tuple[str, str], ...]
    """What the manager reads first: (label, value) lines."""
    tables: tuple[Table, ...] = ()
    charts: tuple[Chart, ...] = ()
    not_judged: tuple[str, ...] = ()
    """What the report could not judge and why (gaps, devices that appeared mid-month, no SLA...)."""
    figures: Mapping[str, Any] = field(default_factory=dict)
    """The numbers behind the summary, by name, for the API and for tests."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)
