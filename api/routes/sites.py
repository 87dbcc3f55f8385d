"""Sites and their devices: the configured tree joined with each device's live state."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ClockDep, SitesDep, StatesDep, Viewer
from api.device_states import DeviceState, DeviceStates
from api.models import DeviceOut, SiteDetail, SiteSummary, device_out
from api.problems import ERROR_RESPONSES, NotFound
from api.routes.params import DeviceId, SiteId
from api.sites import SiteTree
from core.contract import KINDS

_KIND_ORDER = {kind: index for index, kind in enumerate(KINDS)}
router = APIRouter(prefix="/sites", tags=["sites"], responses=ERROR_RESPONSES)
# Handlers are `async def`: they only read the in-memory site tree and device states (a lock held for
# microseconds), so a worker-thread hop would cost more than the work (the latest-state benchmark).


def _site_devices(site_id: str, sites: SiteTree, states: DeviceStates) -> list[DeviceOut]:
    """Every device of a site: described ones (even if never heard from) and ones only seen on MQTT."""
    seen = {s.device.device: s for s in states.of_site(site_id)}
    out = []
    for configured in sites.devices_of(site_id):
        state = seen.pop(configured.key.device, None) or DeviceState(configured.key)
        out.append(device_out(state, configured))
    out.extend(device_out(state, None) for state in seen.values())
    out.sort(key=lambda d: (_KIND_ORDER[d.kind], d.id))
    return out


def _detail(site_id: str, sites: SiteTree, states: DeviceStates, now: float) -> SiteDetail:
    site = sites.site(site_id)
    devices = _site_devices(site_id, sites, states)
    if site is None:
        if not devices:
            raise NotFound(f"no site {site_id!r}: it is not described in a site file and no device of it "
                           "has reported; GET /api/v1/sites lists the sites")
        return SiteDetail(id=site_id, name=site_id, timezone="UTC", devices=len(devices),
                          online=sum(d.presence == "online" for d in devices), in_load_shedding=False,
                          device_list=devices)
    online = sum(d.presence == "online" for d in devices)
    return SiteDetail(id=site.id, name=site.name, timezone=site.timezone, devices=len(devices), online=online,
                      in_load_shedding=site.in_load_shedding(now), device_list=devices)


@router.get("", response_model=list[SiteSummary], summary="List sites")
async def list_sites(_: Viewer, sites: SitesDep, states: StatesDep, clock: ClockDep) -> list[SiteSummary]:
    """Every described site, and every site a device has reported from, with device counts."""
    ids = [s.id for s in sites.sites()]
    ids += sorted({s.device.site for s in states.all()} - set(ids))
    now = clock.now()
    return [SiteSummary(**_detail(i, sites, states, now).model_dump(exclude={"device_list"})) for i in ids]


@router.get("/{site}", response_model=SiteDetail, summary="One site with its devices and their state")
async def get_site(site: SiteId, _: Viewer, sites: SitesDep, states: StatesDep, clock: ClockDep) -> SiteDetail:
    return _detail(site, sites, states, clock.now())


@router.get("/{site}/devices", response_model=list[DeviceOut], summary="A site's devices and their state")
async def list_devices(site: SiteId, _: Viewer, sites: SitesDep, states: StatesDep, clock: ClockDep) -> list[DeviceOut]:
    return _detail(site, sites, states, clock.now()).device_list


@router.get("/{site}/devices/{device}", response_model=DeviceOut,
            summary="One device: latest reading, last seen, online/offline and why")
async def get_device(site: SiteId, device: DeviceId, _: Viewer, sites: SitesDep, states: StatesDep) -> DeviceOut:
    configured = sites.device(site, device)
    for state in states.of_site(site):
        if state.device.device == device:
            return device_out(state, configured)
    if configured is not None:
        return device_out(DeviceState(configured.key), configured)
    raise NotFound(f"site {site!r} has no device {device!r} (not described and never reported)")
