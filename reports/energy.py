"""Energy and load-shedding per local day and for the month, per inverter and for the site.

Counts of readings become minutes at the device's usual rate (readings a minute, reports/source.py),
and sums of power become energy with each reading standing for its share of a minute:

- minutes on each source: per minute, the readings not in `grid` mode, counted for the off-grid mode
  most of them report (solar, battery, generator, bypass, fault); the grid has the rest of the minutes
  with data; minutes without readings are "no data";
- load-shedding: per minute, the share of readings that found the grid out (`grid_ok` false; the
  site's grid is out where any inverter found it out), inside the published `load_shedding` windows
  (scheduled) and outside them (unscheduled);
- PV energy (and the part produced while the grid was out); battery energy in and out, counted in Ah
  (`battery_a`) and turned into kWh at the battery's nominal voltage; generator run minutes
  (`running`), output energy and fuel burnt (hour-to-hour falls of `fuel_pct` × tank; refills are
  not burns);
- with `tariffs` in the site file: grid energy solar replaced while the grid was on, diesel it
  replaced while the grid was out (at the generators' measured litres per kWh, or the tariff's
  `diesel_l_per_kwh` when they delivered too little to measure), and what the diesel burnt cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.contract import INVERTER_MODES
from core.site import Site
from reports.document import Chart, ReportDocument, Table
from reports.month import ReportMonth
from reports.source import Coverage, MinuteCounts, ReportSource, Rows, all_missing, minute_values

MIN_GENERATOR_KWH_TO_MEASURE = 5.0
"""Below this generator output in the month, litres per kWh come from the tariffs, not the data."""


@dataclass(frozen=True)
class InverterDays:
    """One inverter's month, per local day (arrays of len(month.days)) unless said otherwise."""

    minutes_by_mode: dict[str, np.ndarray]
    no_data_min: np.ndarray
    grid_out: np.ndarray
    """Per minute of the month: the share of its usual readings that found the grid out (0..1)."""
    pv_kwh: np.ndarray
    pv_kwh_grid_out: np.ndarray
    battery_in_kwh: np.ndarray
    battery_out_kwh: np.ndarray


@dataclass(frozen=True)
class GeneratorDays:
    run_min: np.ndarray
    fuel_l: np.ndarray
    output_kwh: np.ndarray


OFF_GRID_MODES = tuple(mode for mode in INVERTER_MODES if mode != "grid")


def _minutes_by_mode(month: ReportMonth, coverage: Coverage, off_grid: MinuteCounts | None) -> dict[str, np.ndarray]:
    """Per day, minutes in each mode: each minute's off-grid readings, over the usual readings a minute,
    go to the off-grid mode most of them report; the grid has the rest of the minutes with data."""
    present = month.minutes_per_day() - month.per_day(coverage.missing)
    share = np.minimum(1.0, minute_values(month, off_grid, "n") / coverage.per_minute)
    modes = np.full(month.minutes, "", dtype=object)
    if off_grid is not None:
        modes[off_grid.minutes] = off_grid.columns["m"]
    out = {mode: np.bincount(month.day_of_minute, weights=share * (modes == mode), minlength=len(month.days))
           for mode in OFF_GRID_MODES}
    out["grid"] = np.maximum(0.0, present - sum(out.values()))
    return out


def read_inverters(source: ReportSource, site: Site) -> dict[str, InverterDays]:
    """Five statements for the whole site, run at once, each one pass over the month's inverter readings."""
    month = source.month
    (coverage, quarters), off_grid, grid_out, daily = source.together(
        lambda: source.coverage("inverter", "load_w", "sum(pv_w) AS pv"),
        lambda: source.minute_counts("inverter", "count(load_w) AS n, mode(mode) AS m", "mode != 'grid'"),
        lambda: source.minute_counts("inverter", "count(load_w) AS n, sum(pv_w) AS pv", "grid_ok = false"),
        lambda: source.daily("inverter", {"ah_in": ("sum(battery_a)", "battery_a > 0"),
                                          "ah_out": ("sum(battery_a)", "battery_a < 0")}))
    zeros = {name: np.zeros(len(month.days)) for name in ("ah_in", "ah_out")}
    result = {}
    for inv in site.inverters:
        cov = coverage.get(inv.id) or all_missing(month)
        days = daily.get(inv.id, zeros)
        kwh = cov.seconds_per_reading / 3.6e6
        kwh_per_ah = cov.seconds_per_reading / 3600 * inv.battery_nominal_v / 1000
        out = grid_out.get(inv.id)
        out_share = np.minimum(1.0, minute_values(month, out, "n") / cov.per_minute)
        pv_out = np.bincount(month.day_of_minute, weights=minute_values(month, out, "pv"), minlength=len(month.days))
        pv = _day_sums_of_buckets(month, quarters.get(inv.id), "pv")
        result[inv.id] = InverterDays(_minutes_by_mode(month, cov, off_grid.get(inv.id)), month.per_day(cov.missing),
                                      out_share, pv * kwh, pv_out * kwh, days["ah_in"] * kwh_per_ah,
                                      -days["ah_out"] * kwh_per_ah)
    return result


def _day_sums_of_buckets(month: ReportMonth, buckets: Rows | None, column: str) -> np.ndarray:
    """Per local day, the sum of `column` over coverage buckets (each lies within one local day)."""
    out = np.zeros(len(month.days))
    if buckets is None or not len(buckets.at):
        return out
    minutes = (buckets.at // 1000 - month.start_s) // 60
    inside = (minutes >= 0) & (minutes < month.minutes)
    np.add.at(out, month.day_of_minute[minutes[inside]], np.nan_to_num(buckets.columns[column][inside]))
    return out


def read_generators(source: ReportSource, site: Site) -> dict[str, GeneratorDays]:
    month = source.month
    (coverage, quarters), running, hourly = source.together(
        lambda: source.coverage("generator", "output_w", "sum(output_w) AS w"),
        lambda: source.daily("generator", {"running": ("count(output_w)", "running = true")}),
        lambda: source.buckets("generator", "last(fuel_pct) AS fuel", "1h"))
    zeros = np.zeros(len(month.days))
    out = {}
    for g in site.generators:
        cov = coverage.get(g.id) or all_missing(month)
        days = running.get(g.id, {"running": zeros})
        output_kwh = _day_sums_of_buckets(month, quarters.get(g.id), "w") * cov.seconds_per_reading / 3.6e6
        out[g.id] = GeneratorDays(days["running"] / cov.per_minute, _fuel_burnt_l(month, hourly.get(g.id), g.tank_l),
                                  output_kwh)
    return out


def _fuel_burnt_l(month: ReportMonth, hourly: Rows | None, tank_l: float) -> np.ndarray:
    """Per day, the falls of the fuel level from hour to hour (a refill is no negative burn)."""
    burnt = np.zeros(len(month.days))
    if hourly is None or len(hourly.at) < 2:
        return burnt
    level = hourly.columns["fuel"]
    fall = np.maximum(0.0, level[:-1] - level[1:]) * tank_l / 100
    minutes = np.clip((hourly.at[1:] // 1000 - month.start_s) // 60, 0, month.minutes - 1)
    np.add.at(burnt, month.day_of_minute[minutes], np.nan_to_num(fall))
    return burnt


def _day_sums(month: ReportMonth, per_minute: np.ndarray) -> np.ndarray:
    return np.bincount(month.day_of_minute, weights=per_minute, minlength=len(month.days))


def _hours(minutes: float) -> float:
    return round(minutes / 60, 2)


def _site_days(site_modes: dict[str, np.ndarray], no_data_min: np.ndarray, shed_scheduled: np.ndarray,
               shed_unscheduled: np.ndarray, pv: np.ndarray, b_in: np.ndarray, b_out: np.ndarray, run: np.ndarray,
               fuel: np.ndarray, gen_kwh: np.ndarray) -> dict[str, list[float]]:
    """The site's days unrounded (minutes summed over its inverters), one list per figure: what
    reports/store.py keeps in InfluxDB for the Monthly dashboard."""
    columns = {f"{mode}_min": minutes for mode, minutes in site_modes.items()}
    columns |= {"no_data_min": no_data_min, "shedding_scheduled_min": shed_scheduled,
                "shedding_unscheduled_min": shed_unscheduled, "pv_kwh": pv, "battery_in_kwh": b_in,
                "battery_out_kwh": b_out, "generator_run_min": run, "fuel_l": fuel, "generator_kwh": gen_kwh}
    return {name: [float(v) for v in values] for name, values in columns.items()}


def energy_document(site: Site, month: ReportMonth, inverters: dict[str, InverterDays],
                    generators: dict[str, GeneratorDays]) -> ReportDocument:
    days = len(month.days)
    zeros = np.zeros(days)
    scheduled = month.mask_of(site.shedding_windows(month.start_s, month.end_s))
    grid_out = np.zeros(month.minutes)
    for inv in inverters.values():
        grid_out = np.maximum(grid_out, inv.grid_out)  # the site's grid is out where any inverter found it out
    shed_scheduled = _day_sums(month, grid_out * scheduled)
    shed_unscheduled = _day_sums(month, grid_out * ~scheduled)
    modes = list(INVERTER_MODES)
    site_modes = {m: sum((i.minutes_by_mode[m] for i in inverters.values()), zeros) for m in modes}
    pv = sum((i.pv_kwh for i in inverters.values()), zeros)
    pv_out = sum((i.pv_kwh_grid_out for i in inverters.values()), zeros)
    b_in = sum((i.battery_in_kwh for i in inverters.values()), zeros)
    b_out = sum((i.battery_out_kwh for i in inverters.values()), zeros)
    run = sum((g.run_min for g in generators.values()), zeros)
    fuel = sum((g.fuel_l for g in generators.values()), zeros)
    gen_kwh = sum((g.output_kwh for g in generators.values()), zeros)
    notes: list[str] = []
    summary = [("Load-shedding", f"scheduled {_hours(shed_scheduled.sum())} h, unscheduled "
                                 f"{_hours(shed_unscheduled.sum())} h (published schedule: "
                                 f"{_hours(month.per_day(scheduled).sum())} h)"),
               ("PV energy", f"{pv.sum():.1f} kWh"),
               ("Battery", f"in {b_in.sum():.1f} kWh, out {b_out.sum():.1f} kWh")]
    for inv_id, inv in inverters.items():
        summary.append((f"Hours on each source ({inv_id})", ", ".join(
            f"{m} {_hours(inv.minutes_by_mode[m].sum())}" for m in modes if inv.minutes_by_mode[m].sum())
            + f", no data {_hours(inv.no_data_min.sum())}"))
        if inv.no_data_min.sum():
            notes.append(f"{inv_id}: {_hours(inv.no_data_min.sum())} h without readings: neither its sources nor its "
                         f"energy are counted then")
    if generators:
        summary.append(("Generators", f"ran {_hours(run.sum())} h, burnt {fuel.sum():.1f} l, "
                                      f"delivered {gen_kwh.sum():.1f} kWh"))
    figures: dict[str, object] = {
        "load_shedding_scheduled_h": _hours(shed_scheduled.sum()),
        "load_shedding_unscheduled_h": _hours(shed_unscheduled.sum()),
        "pv_kwh": float(pv.sum()), "battery_in_kwh": float(b_in.sum()), "battery_out_kwh": float(b_out.sum()),
        "generator_run_h": _hours(run.sum()), "fuel_l": float(fuel.sum()), "generator_kwh": float(gen_kwh.sum()),
        "minutes_by_mode": {inv_id: {m: [round(float(v), 2) for v in inv.minutes_by_mode[m]] for m in modes}
                            for inv_id, inv in inverters.items()},
        "no_data_min": {inv_id: [int(v) for v in inv.no_data_min] for inv_id, inv in inverters.items()},
        "load_shedding_scheduled_min": [round(float(v), 2) for v in shed_scheduled],
        "load_shedding_unscheduled_min": [round(float(v), 2) for v in shed_unscheduled],
        "daily": _site_days(site_modes, sum((i.no_data_min for i in inverters.values()), zeros), shed_scheduled,
                            shed_unscheduled, pv, b_in, b_out, run, fuel, gen_kwh),
    }
    tariffs = site.tariffs
    if tariffs is None:
        notes.append("the site file has no tariffs: no cost is estimated")
    else:
        measured = gen_kwh.sum() >= MIN_GENERATOR_KWH_TO_MEASURE and fuel.sum() > 0
        l_per_kwh = fuel.sum() / gen_kwh.sum() if measured else tariffs.diesel_l_per_kwh
        if not measured:
            notes.append(f"the generators delivered too little to measure their fuel per kWh: "
                         f"{tariffs.diesel_l_per_kwh} l/kWh from the site's tariffs is used")
        grid_saved = (pv.sum() - pv_out.sum()) * tariffs.grid_per_kwh
        diesel_saved = pv_out.sum() * l_per_kwh * tariffs.diesel_per_litre
        diesel_cost = fuel.sum() * tariffs.diesel_per_litre
        c = tariffs.currency
        summary.append(("Saved by solar (estimate)", f"{grid_saved + diesel_saved:,.0f} {c} (grid {grid_saved:,.0f}, "
                                                     f"diesel {diesel_saved:,.0f} at {l_per_kwh:.2f} l/kWh)"))
        summary.append(("Diesel burnt", f"{diesel_cost:,.0f} {c}"))
        figures |= {"grid_saved": float(grid_saved), "diesel_saved": float(diesel_saved),
                    "saved": float(grid_saved + diesel_saved), "diesel_cost": float(diesel_cost),
                    "diesel_l_per_kwh": float(l_per_kwh), "currency": c}
    if not site.load_shedding.daily and not any(site.load_shedding.windows_on(d) for d in range(7)):
        notes.append("the site file publishes no load-shedding schedule: every grid outage counts as unscheduled")
    labels = tuple(f"{d.day}" for d in month.days)
    rows = []
    for index, day in enumerate(month.days):
        rows.append((day.isoformat(), *(_hours(site_modes[m][index]) for m in modes),
                     _hours(sum(i.no_data_min[index] for i in inverters.values())),
                     _hours(shed_scheduled[index]), _hours(shed_unscheduled[index]), round(pv[index], 2),
                     round(b_in[index], 2), round(b_out[index], 2), _hours(run[index]), round(fuel[index], 2)))
    table = Table("daily", "Per day (hours summed over the inverters)",
                  ("day", *(f"{m}_h" for m in modes), "no_data_h", "shedding_scheduled_h", "shedding_unscheduled_h",
                   "pv_kwh", "battery_in_kwh", "battery_out_kwh", "generator_h", "fuel_l"), tuple(rows))
    charts = (Chart("sources", "Hours on each source per day", labels,
                    {m: tuple(v / 60 for v in site_modes[m]) for m in modes if site_modes[m].sum()}, "hours",
                    "stacked"),
              Chart("shedding", "Load-shedding per day", labels,
                    {"scheduled": tuple(v / 60 for v in shed_scheduled),
                     "unscheduled": tuple(v / 60 for v in shed_unscheduled)}, "hours", "stacked"),
              Chart("energy", "Energy per day", labels, {"PV": tuple(pv), "battery out": tuple(b_out),
                                                          "generator": tuple(gen_kwh)}, "kWh", "lines"))
    return ReportDocument("energy", f"Energy and load-shedding {month}", site.id, site.name, str(month),
                          site.timezone, tuple(summary), (table,), charts, tuple(notes), figures)


def energy_report(source: ReportSource, site: Site) -> ReportDocument:
    return energy_document(site, source.month, read_inverters(source, site), read_generators(source, site))
