"""Energy and load-shedding per local day and for the month, per inverter and for the site:

- minutes on each source: the inverter's `mode` (grid, solar, battery, generator, bypass, fault),
  the mode most of a minute's readings report; minutes without readings are "no data";
- load-shedding: minutes the grid was out (`grid_ok` false at any inverter), split into scheduled
  (inside the published `load_shedding` windows) and unscheduled;
- energy from per-minute mean power (a minute with readings counts as a whole minute): PV, battery
  in and out, generator output; generator run minutes and fuel burnt (drops of `fuel_pct` × tank);
- with `tariffs` in the site file: grid energy solar replaced while the grid was on, diesel it
  replaced while the grid was out (at the generators' measured litres per kWh, or the tariff's
  `diesel_l_per_kwh` when they reported too little), and what the diesel burnt cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.contract import INVERTER_MODES
from core.site import Site
from reports.document import Chart, ReportDocument, Table
from reports.month import ReportMonth
from reports.source import ReportSource, Rows, rows_of

MIN_GENERATOR_KWH_TO_MEASURE = 5.0
"""Below this generator output in the month, litres per kWh come from the tariffs, not the data."""


@dataclass(frozen=True)
class InverterDays:
    """One inverter's month, per local day (arrays of len(month.days))."""

    minutes_by_mode: dict[str, np.ndarray]
    no_data_min: np.ndarray
    grid_out: np.ndarray
    """Per minute of the month: the grid was out at this inverter."""
    pv_kwh: np.ndarray
    pv_kwh_grid_out: np.ndarray
    battery_in_kwh: np.ndarray
    battery_out_kwh: np.ndarray


@dataclass(frozen=True)
class GeneratorDays:
    run_min: np.ndarray
    fuel_l: np.ndarray
    output_kwh: np.ndarray


def _mask(month: ReportMonth, rows: Rows, keep: np.ndarray | None = None) -> np.ndarray:
    mask = np.zeros(month.minutes, dtype=bool)
    at = rows.at if keep is None else rows.at[keep]
    mask[at[(at >= 0) & (at < month.minutes)]] = True
    return mask


def minutes_by_mode(month: ReportMonth, off_grid_modes: Rows,
                    missing: Rows) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per day, minutes in each mode: the non-grid minutes as InfluxDB found them; grid is what is
    left of each day's minutes with data."""
    modes = off_grid_modes.columns.get("m", np.zeros(0, dtype=object))
    no_data = _mask(month, missing)
    out = {mode: month.per_day(_mask(month, off_grid_modes, modes == mode) & ~no_data)
           for mode in INVERTER_MODES if mode != "grid"}
    out["grid"] = month.minutes_per_day() - month.per_day(no_data) - sum(out.values())
    return out, month.per_day(no_data)


def read_inverters(source: ReportSource, site: Site) -> dict[str, InverterDays]:
    pm = "mean(pv_w) AS pv, mode(grid_ok) AS g"
    off_grid = source.minutes_where("inverter", "mode(mode) AS m", "m != 'grid'")
    missing = source.minutes_where("inverter", "count(load_w) AS n", "n = 0", fill="0")
    grid_out = source.minutes_where("inverter", "mode(grid_ok) AS g", "g = false")
    pv = source.daily("inverter", pm, "sum(pv) / 60000")
    pv_out = source.daily("inverter", pm, "sum(pv) / 60000", condition="g = false")
    power = (f"SELECT mean(p) AS p FROM (SELECT battery_a * battery_v AS p FROM inverter WHERE "
             f"{source.raw_filter()} GROUP BY device) WHERE {source.raw_filter()} GROUP BY time(1m), device")
    into = source.daily_raw(power, "sum(p) / 60000", condition="p > 0")
    out_of = source.daily_raw(power, "sum(p) / -60000", condition="p < 0")
    days = len(source.month.days)
    zeros = np.zeros(days)
    result = {}
    for inv in site.inverters:
        by_mode, no_data = minutes_by_mode(source.month, rows_of(off_grid, inv.id), rows_of(missing, inv.id))
        if inv.id not in missing:
            by_mode = {mode: zeros.copy() for mode in by_mode}
            no_data = source.month.minutes_per_day()
        result[inv.id] = InverterDays(by_mode, no_data, _mask(source.month, rows_of(grid_out, inv.id)),
                                      pv.get(inv.id, zeros), pv_out.get(inv.id, zeros), into.get(inv.id, zeros),
                                      out_of.get(inv.id, zeros))
    return result


def read_generators(source: ReportSource, site: Site) -> dict[str, GeneratorDays]:
    running = source.minutes_where("generator", "mode(running) AS r", "r = true")
    fuel_drop = (f"SELECT difference(fuel_pct) AS d FROM generator WHERE {source.raw_filter()} GROUP BY device")
    fuel = source.daily_raw(fuel_drop, "sum(d)", condition="d < 0")
    output = source.daily("generator", "mean(output_w) AS w", "sum(w) / 60000")
    zeros = np.zeros(len(source.month.days))
    return {g.id: GeneratorDays(source.month.per_day(_mask(source.month, rows_of(running, g.id))),
                                -fuel.get(g.id, zeros) * g.tank_l / 100, output.get(g.id, zeros))
            for g in site.generators}


def _hours(minutes: float) -> float:
    return round(minutes / 60, 2)


def energy_document(site: Site, month: ReportMonth, inverters: dict[str, InverterDays],
                    generators: dict[str, GeneratorDays]) -> ReportDocument:
    days = len(month.days)
    zeros = np.zeros(days)
    scheduled = month.mask_of(site.shedding_windows(month.start_s, month.end_s))
    grid_out = np.zeros(month.minutes, dtype=bool)
    for inv in inverters.values():
        grid_out |= inv.grid_out
    shed_scheduled = month.per_day(grid_out & scheduled)
    shed_unscheduled = month.per_day(grid_out & ~scheduled)
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
        "minutes_by_mode": {inv_id: {m: [int(v) for v in inv.minutes_by_mode[m]] for m in modes}
                            for inv_id, inv in inverters.items()},
        "no_data_min": {inv_id: [int(v) for v in inv.no_data_min] for inv_id, inv in inverters.items()},
        "load_shedding_scheduled_min": [int(v) for v in shed_scheduled],
        "load_shedding_unscheduled_min": [int(v) for v in shed_unscheduled],
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
        figures |= {"grid_saved": grid_saved, "diesel_saved": diesel_saved, "diesel_cost": diesel_cost,
                    "currency": c}
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
