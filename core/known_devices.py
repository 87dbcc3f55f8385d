"""Which devices may publish: the devices the site files describe, each with the labels it is
described with (an uplink's `isp`, a sensor's `room`).

With `sites.known_devices_only` on, every stage that decodes readings (collector, rules engine, API)
passes a `KnownDevices` to `core.decode.decode_message`, which refuses a device no site file
describes (`unknown_device`) and a label other than the described one (`unknown_label`). So a typo
in a device's id, or a stranger with broker credentials, creates no series, no site and no alert,
and one misconfigured sensor cannot spread a room over a thousand tag values.

Labels are matched where a device's description has a field named like a label metric of its kind
(contract `METRICS`), so a kind with a new label is covered without a change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.contract import DeviceKey, Reading
from core.line_protocol import LINE_LAYOUT, series_key
from core.settings.sites import SitesSettings
from core.site import Site, described_labels, iter_devices, load_site


class KnownDevices:
    """Immutable after construction: share it between threads."""

    def __init__(self, sites: Iterable[Site]) -> None:
        self._labels: dict[DeviceKey, tuple[tuple[str, str], ...]] = {}
        for site in sites:
            for spec in iter_devices(site):
                labels = tuple(described_labels(spec).items())
                self._labels[DeviceKey(site.id, spec.kind, spec.id)] = labels
        self.fast_reading_series: dict[str, str] = {}
        """Reading topic → the series key (`measurement,tags `) of that device's readings with its
        described labels, for each known device that describes every label of its kind (or whose kind
        has none): a reading whose line begins with it carries exactly the described labels, so the
        collector's fast paths may take it without decoding it again (any other goes the general way
        and is judged there)."""
        for key, labels in self._labels.items():
            label_names = LINE_LAYOUT[key.kind][0]
            described = dict(labels)
            if set(label_names) <= described.keys():
                self.fast_reading_series[key.reading_topic()] = series_key(
                    key, ((name, described[name]) for name in label_names))

    def device_refusal(self, device: DeviceKey) -> str | None:
        """Why `device` may not publish, or None if a site file describes it."""
        if device in self._labels:
            return None
        return (f"no site file describes {device.kind.value} {device.device!r} of site {device.site!r}; "
                "add it to the site's file (sites.files), or correct the id the device publishes under")

    def label_refusal(self, reading: Reading) -> str | None:
        """Why `reading`'s labels are not its device's described ones, or None if they are (or the
        device is not known: `device_refusal` says so)."""
        for name, described in self._labels.get(reading.device, ()):
            sent = reading.metrics.get(name)
            if sent != described:
                shown = repr(sent)[:80] if isinstance(sent, str) else "missing"
                return (f"{name} is {shown}, but the site file describes {reading.device.device!r} with "
                        f"{name} {described!r}; correct the device's setting or the site file")
        return None

    def __len__(self) -> int:
        return len(self._labels)


def load_sites(paths: Iterable[Path]) -> dict[str, Site]:
    """The site files' sites by id (raises `core.site.SiteFileError`, or `ValueError` for two files of one site)."""
    sites: dict[str, Site] = {}
    for path in paths:
        site = load_site(path)
        if site.id in sites:
            raise ValueError(f"{path} describes site {site.id!r} again; each site needs a file and an id of its own")
        sites[site.id] = site
    return sites


def known_devices_for(settings: SitesSettings, sites: Iterable[Site]) -> KnownDevices | None:
    """The devices that may publish under `settings`, of `sites` already loaded; None when any device may."""
    return KnownDevices(sites) if settings.admits_only_known_devices else None


def known_devices_from_files(settings: SitesSettings) -> KnownDevices | None:
    """`known_devices_for`, loading `settings.files` (for a stage that needs nothing else of them)."""
    return known_devices_for(settings, load_sites(settings.files).values())
