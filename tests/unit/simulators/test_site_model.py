"""core.site: validation with file/line errors, and the schedule helpers the rules engine uses."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.contract import DeviceKey, Kind
from core.site import Site, SiteFileError, WeeklySchedule, load_site, quiet_limits

PARK = Path(__file__).resolve().parents[3] / "simulators" / "sites" / "park.yaml"
KHI = ZoneInfo("Asia/Karachi")

MINIMAL = """\
id: test-site
name: ٹیسٹ
latitude: 29.8
longitude: 71.8
load_shedding:
  daily: ["10:00-11:00", "23:00-01:00"]
  tue: ["00:00-24:00"]
  wed: ["00:00-02:00", "08:00-09:00"]
opening_hours:
  daily: ["09:00-18:00"]
  sun: []
inverters:
  - {id: inv-1, battery_kwh: 10, pv_kwp: 5}
uplinks:
  - {id: up-a, isp: PTCL, iface: eth1, powered_by: inv-1}
occupancy_sensors:
  - {id: occ-1, room: کمرہ 1, capacity: 10}
"""


def local(*args: int) -> float:
    return datetime(*args, tzinfo=KHI).timestamp()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(MINIMAL)
    return load_site(path)


def test_park_loads_with_its_devices() -> None:
    park = load_site(PARK)
    assert park.id == "park"
    assert park.timezone == "Asia/Karachi"
    assert abs(park.latitude - 29.8) < 0.01 and abs(park.longitude - 71.8) < 0.01
    assert {inv.id for inv in park.inverters} == {"inv-main", "inv-lab"}
    assert all(u.powered_by == "inv-main" for u in park.uplinks)
    assert len(park.occupancy_sensors) == 6


def test_load_shedding_windows_and_grid_return(site: Site) -> None:
    # 2026-03-02 is a Monday.
    assert not site.in_load_shedding(local(2026, 3, 2, 9, 59))
    assert site.in_load_shedding(local(2026, 3, 2, 10, 0))
    assert site.next_grid_return(local(2026, 3, 2, 10, 30)) == local(2026, 3, 2, 11, 0)
    assert not site.in_load_shedding(local(2026, 3, 2, 11, 0))
    assert site.next_grid_return(local(2026, 3, 2, 12, 0)) is None


def test_windows_crossing_midnight_and_back_to_back_days_merge(site: Site) -> None:
    # Monday 23:00 starts a window; Tuesday is shed all day; Wednesday 00:00-02:00 continues it.
    assert site.in_load_shedding(local(2026, 3, 2, 23, 30))
    assert site.next_grid_return(local(2026, 3, 2, 23, 30)) == local(2026, 3, 4, 2, 0)
    assert site.next_grid_return(local(2026, 3, 3, 12, 0)) == local(2026, 3, 4, 2, 0)
    # Thursday's 23:00-01:00 runs into Friday morning.
    assert site.in_load_shedding(local(2026, 3, 6, 0, 30))
    assert site.next_grid_return(local(2026, 3, 6, 0, 30)) == local(2026, 3, 6, 1, 0)


def test_opening_hours_in_local_time(site: Site) -> None:
    assert site.is_open(local(2026, 3, 2, 9, 0))
    assert not site.is_open(local(2026, 3, 2, 18, 0))
    assert not site.is_open(local(2026, 3, 1, 12, 0))  # a Sunday
    # 04:30 UTC is 09:30 in Karachi (UTC+5).
    assert site.is_open(datetime(2026, 3, 2, 4, 30, tzinfo=ZoneInfo("UTC")).timestamp())


def test_shedding_windows_lists_intervals_overlapping_a_range(site: Site) -> None:
    # Sunday's 23:00-01:00 window runs into Monday, so it overlaps Monday morning.
    windows = site.shedding_windows(local(2026, 3, 2, 0, 0), local(2026, 3, 2, 12, 0))
    assert windows == [(local(2026, 3, 1, 23, 0), local(2026, 3, 2, 1, 0)),
                       (local(2026, 3, 2, 10, 0), local(2026, 3, 2, 11, 0))]


@pytest.mark.parametrize(("hh", "mm", "ss", "near"), [
    (9, 49, 59, False), (9, 50, 0, True), (10, 30, 0, True), (11, 9, 59, True), (11, 10, 0, False)])
def test_near_load_shedding_forgives_the_grace_on_both_sides_of_a_window(site: Site, hh: int, mm: int, ss: int,
                                                                         near: bool) -> None:
    assert site.near_load_shedding(local(2026, 3, 2, hh, mm, ss), 600) is near
    assert site.near_load_shedding(local(2026, 3, 2, hh, mm, ss), 0) is site.in_load_shedding(
        local(2026, 3, 2, hh, mm, ss))


def test_a_window_shorter_than_the_grace_is_near_from_anywhere_within_the_grace(site: Site) -> None:
    # A 5-minute window, 10:00-10:05: at 10:08 neither 09:58, 10:08 nor 10:18 is in it, yet it ended
    # 3 minutes ago.
    short = site.model_copy(update={"load_shedding": WeeklySchedule.model_validate({"daily": ["10:00-10:05"]})})
    assert short.near_load_shedding(local(2026, 3, 2, 10, 8), 600)
    assert short.near_load_shedding(local(2026, 3, 2, 9, 52), 600)
    assert not short.near_load_shedding(local(2026, 3, 2, 10, 16), 600)


@pytest.mark.parametrize(("text", "line", "fragment"), [
    (MINIMAL.replace("latitude: 29.8", "latitude: 129.8"), 3, "latitude: Input should be less than or equal to 90"),
    (MINIMAL.replace("id: test-site", "id: Test Site"), 1, "id: String should match pattern"),
    (MINIMAL.replace('"10:00-11:00"', '"10:00-1100"'), 6, "load_shedding.daily.0: window '10:00-1100' is not"),
    (MINIMAL.replace("iface: eth1", "ifce: eth1"), 15, "uplinks.0.ifce: unknown key"),
    (MINIMAL.replace("powered_by: inv-1", "powered_by: inv-9"), 15, "uplinks.0.powered_by: 'inv-9' is not an inverter"),
    (MINIMAL.replace("id: occ-1", "id: inv-1"), 17, "occupancy_sensors.0.id: device id 'inv-1' is used twice"),
    (MINIMAL + "timezone: Asia/Lahore\n", 18, "timezone: unknown time zone 'Asia/Lahore'"),
    (MINIMAL.replace("capacity: 10}", "capacity: 10, max_quiet: soon}"), 17,
     "occupancy_sensors.0.max_quiet: 'soon' is not a duration; write '30s', '5m', '1h30m'"),
    (MINIMAL.replace("capacity: 10}", "capacity: 10, max_quiet: 8d}"), 17,
     "occupancy_sensors.0.max_quiet: Input should be less than or equal to 604800"),
    (MINIMAL.replace("name: ٹیسٹ", "name: [oops"), None, "not valid YAML"),
    (MINIMAL + "plugs:\n  - {id: plug-1, rated_w: 18, powered_by: up-a}\n", 19,
     "plugs.0.powered_by: 'up-a' is not an inverter of this site (inverters: inv-1)"),
    (MINIMAL + "plugs:\n  - {id: plug-1, rated_w: 0}\n", 19, "plugs.0.rated_w: Input should be greater than 0"),
])
def test_mistakes_name_file_line_and_problem(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:"), message
    assert fragment in message, message


def test_max_quiet_is_a_duration_and_quiet_limits_lists_the_devices_that_have_one(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(MINIMAL.replace("capacity: 10}", "capacity: 10, max_quiet: 1h30m}"))
    site = load_site(path)
    assert quiet_limits([site]) == {DeviceKey("test-site", Kind.OCCUPANCY, "occ-1"): 5400.0}


def test_site_built_in_code_still_checks_devices() -> None:
    with pytest.raises(ValueError, match="not an inverter"):
        Site(id="s", name="S", latitude=0, longitude=0,
             uplinks=({"id": "u", "isp": "X", "iface": "eth0", "powered_by": "nope"},))  # type: ignore[arg-type]
