"""The sites facmon monitors: one setting every stage reads, so that they all describe the same park."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator, model_validator

from core.settings.base import Section


class SitesSettings(Section):
    files: tuple[Path, ...] = ()
    """Site description files (core/site.py), one per site; in the environment, comma-separated. The
    rules engine takes schedules, rooms and uplink roles from them, the API its site tree, the
    collector, rules engine and API the devices they accept, `facmon dashboards` room capacities,
    `facmon simulate` the site it simulates. Empty: no site is described, and only `facmon up` and
    `facmon simulate` fall back to the shipped demo park."""
    known_devices_only: bool | None = None
    """Accept readings and status only from the devices `files` describe, and a label (`isp`, `room`)
    only with the value the file gives that device; refuse the rest as `unknown_device` or
    `unknown_label` (counted and dead-lettered), so typos and strangers create no series, sites or
    alerts. null: on whenever `files` describes a site, off when it describes none."""

    @field_validator("files", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _files_for_known_devices(self) -> SitesSettings:
        if self.known_devices_only and not self.files:
            raise ValueError("known_devices_only is true but sites.files lists no site file, so every reading "
                             "would be refused; list the site files, or set known_devices_only to false")
        return self

    @property
    def admits_only_known_devices(self) -> bool:
        return bool(self.files) if self.known_devices_only is None else self.known_devices_only
