"""Battery health per inverter's battery, from 15-minute buckets (mean current, mean voltage, state
of charge at the bucket's end, readings counted):

- usable capacity by coulomb counting: over each discharge of at least MIN_SWING_PCT points of state
  of charge, through buckets with every reading present, the charge that flowed (Ah) divided by the
  fall in state of charge; the month's estimate is the ratio of the sums over all such discharges,
  and each week's the same over its own;
- equivalent full cycles: charge discharged / rated capacity;
- depth-of-discharge histogram: each discharge swing (at least 5 points) by its depth;
- voltage sag: per week, the internal resistance a least-squares fit of voltage on current and
  state of charge finds, given as the sag at a 100 A discharge;
- an alert when the estimate falls below the inverter's `capacity_alert_pct` of its `battery_kwh`;
- cell spread, where the inverter or its BMS reports cell voltages (`cell_v_delta_mv`, or `cell_v_max`
  and `cell_v_min`): each bucket's mean spread, per week its highest and its mean, the trend (a
  least-squares slope over the month, mV a week), and a note above CELL_SPREAD_ALERT_MV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.site import Inverter, Site
from reports.document import Chart, ReportDocument, Table
from reports.month import WEEK_S, ReportMonth
from reports.source import ReportSource, Rows

BUCKET = "15m"
BUCKET_H = 0.25
MIN_SWING_PCT = 20.0
"""Shallower discharges are left out of the capacity estimate: SoC rounding would dominate them."""
REVERSAL_PCT = 2.0
"""A swing ends when the state of charge turns back by more than this."""
DOD_BINS = tuple(range(0, 101, 10))
SAG_AT_A = 100.0
CELL_SPREAD_ALERT_MV = 100.0
"""A bucket's mean cell spread above this asks for a look at the cells (balancing, a weak cell): LiFePO4
cells in balance stay within a few tens of mV."""
WEEK_MS = WEEK_S * 1000


@dataclass(frozen=True)
class Swing:
    first: int
    """Bucket index whose end is the swing's start."""
    last: int
    depth_pct: float
    ah: float


def _complete_runs(rows: Rows) -> list[np.ndarray]:
    """Index runs of consecutive buckets in which every expected reading is present."""
    if not len(rows.at):
        return []
    counts = rows.columns["n"]
    # A bucket without a state of charge or a current (a device that leaves metrics out) breaks a run.
    full = (counts >= np.median(counts)) & np.isfinite(rows.columns["soc"]) & np.isfinite(rows.columns["a"])
    contiguous = np.diff(rows.at, prepend=rows.at[0]) == 15 * 60_000
    runs, current = [], []
    for index in range(len(rows.at)):
        if full[index] and (not current or contiguous[index]):
            current.append(index)
        else:
            if len(current) > 1:
                runs.append(np.array(current))
            current = [index] if full[index] else []
    if len(current) > 1:
        runs.append(np.array(current))
    return runs


def _swing(soc: np.ndarray, amps: np.ndarray, top: int, bottom: int) -> Swing:
    return Swing(top, bottom, float(soc[top] - soc[bottom]), -float(amps[top + 1: bottom + 1].sum()) * BUCKET_H)


def discharge_swings(soc: np.ndarray, amps: np.ndarray) -> list[Swing]:
    """Falls of `soc` (bucket-end SoC) from a local top to a local bottom, each with the charge that
    flowed out in the buckets after the top up to the bottom (positive Ah). `amps`: bucket mean current."""
    swings: list[Swing] = []
    top = bottom = 0
    for k in range(1, len(soc)):
        if bottom == top and soc[k] >= soc[top]:
            top = bottom = k
        elif soc[k] < soc[bottom]:
            bottom = k
        elif soc[k] > soc[bottom] + REVERSAL_PCT:
            if bottom > top:
                swings.append(_swing(soc, amps, top, bottom))
            top = bottom = k
    if bottom > top:
        swings.append(_swing(soc, amps, top, bottom))
    return swings


@dataclass(frozen=True)
class BatteryMonth:
    inverter: Inverter
    rated_ah: float
    capacity_ah: float | None
    weekly_capacity_ah: list[float | None]
    cycles: float
    dod_histogram: list[int]
    weekly_sag_v: list[float | None]
    swings_used: int


def _capacity(swings: list[Swing]) -> float | None:
    deep = [s for s in swings if s.depth_pct >= MIN_SWING_PCT]
    if not deep:
        return None
    return 100 * sum(s.ah for s in deep) / sum(s.depth_pct for s in deep)


def _sag_v(v: np.ndarray, a: np.ndarray, soc: np.ndarray) -> float | None:
    loaded = np.isfinite(v) & np.isfinite(a) & np.isfinite(soc)
    if loaded.sum() < 20 or np.ptp(a[loaded]) < 5:
        return None
    design = np.column_stack([np.ones(loaded.sum()), soc[loaded], a[loaded]])
    coef, *_ = np.linalg.lstsq(design, v[loaded], rcond=None)
    return float(coef[2] * SAG_AT_A)


def assess(inverter: Inverter, month: ReportMonth, rows: Rows) -> BatteryMonth:
    rated_ah = inverter.battery_kwh * 1000 / inverter.battery_nominal_v
    weeks = month.weeks
    week_of = month.week_of(rows.at)
    swings_by_week: list[list[Swing]] = [[] for _ in range(weeks)]
    all_swings: list[Swing] = []
    for run in _complete_runs(rows):
        for s in discharge_swings(rows.columns["soc"][run], rows.columns["a"][run]):
            moved = Swing(int(run[s.first]), int(run[s.last]), s.depth_pct, s.ah)
            all_swings.append(moved)
            swings_by_week[min(weeks - 1, int(week_of[moved.last]))].append(moved)
    amps = rows.columns.get("a", np.zeros(0))
    discharged_ah = float(-np.nansum(np.minimum(amps, 0)) * BUCKET_H)
    depths = [s.depth_pct for s in all_swings if s.depth_pct >= 5]
    histogram = np.histogram(depths, bins=DOD_BINS)[0].tolist() if depths else [0] * (len(DOD_BINS) - 1)
    sags = []
    for week in range(weeks):
        here = week_of == week
        sags.append(_sag_v(rows.columns["v"][here], rows.columns["a"][here], rows.columns["soc_mean"][here])
                    if len(rows.at) else None)
    return BatteryMonth(inverter, rated_ah, _capacity(all_swings), [_capacity(w) for w in swings_by_week],
                        discharged_ah / rated_ah, histogram, sags,
                        sum(1 for s in all_swings if s.depth_pct >= MIN_SWING_PCT))


@dataclass(frozen=True)
class CellSpread:
    """One battery's cell spread in the month (mV), from its buckets' mean spread; None: not reported."""

    max_mv: float | None
    mean_mv: float | None
    trend_mv_per_week: float | None
    weekly: list[dict[str, float | None]]
    """Per week: max_mv, mean_mv."""


def bucket_spread_mv(rows: Rows) -> np.ndarray:
    """Per bucket, the mean cell spread in mV (nan where no cell voltage was reported): the reported
    `cell_v_delta_mv`, else the mean highest cell less the mean lowest (the mean of the differences)."""
    nan = np.full(len(rows.at), np.nan)
    delta = rows.columns.get("cell_delta", nan)
    from_cells = 1000 * (rows.columns.get("cell_max", nan) - rows.columns.get("cell_min", nan))
    return np.where(np.isfinite(delta), delta, from_cells)


def cell_spread(month: ReportMonth, rows: Rows) -> CellSpread:
    spread = bucket_spread_mv(rows)
    week_of = month.week_of(rows.at)
    known = np.isfinite(spread)
    weekly: list[dict[str, float | None]] = []
    for week in range(month.weeks):
        here = spread[(week_of == week) & known]
        weekly.append({"max_mv": float(here.max()) if len(here) else None,
                       "mean_mv": float(here.mean()) if len(here) else None})
    if not known.any():
        return CellSpread(None, None, None, weekly)
    trend = None
    if known.sum() >= 2 and np.ptp(rows.at[known]) >= WEEK_MS / 7:
        trend = float(np.polyfit((rows.at[known] - rows.at[known][0]) / WEEK_MS, spread[known], 1)[0])
    return CellSpread(float(spread[known].max()), float(spread[known].mean()), trend, weekly)


def read_buckets(source: ReportSource) -> dict[str, Rows]:
    """Per inverter, its 15-minute buckets: two statements run at once (each reads its own fields),
    joined on the bucket's time."""
    current, charge = source.together(
        lambda: source.buckets("inverter", "mean(battery_a) AS a, count(battery_a) AS n", BUCKET),
        lambda: source.buckets("inverter", "last(battery_soc_pct) AS soc, mean(battery_soc_pct) AS soc_mean, "
                                           "mean(battery_v) AS v, mean(cell_v_delta_mv) AS cell_delta, "
                                           "mean(cell_v_max) AS cell_max, mean(cell_v_min) AS cell_min", BUCKET))
    joined = {}
    for device, rows in current.items():
        other = charge.get(device)
        if other is None:
            continue
        at, mine, theirs = np.intersect1d(rows.at, other.at, return_indices=True)
        joined[device] = Rows(at, {**{k: v[mine] for k, v in rows.columns.items()},
                                   **{k: v[theirs] for k, v in other.columns.items()}})
    return joined


def battery_document(site: Site, month: ReportMonth, buckets: dict[str, Rows]) -> ReportDocument:
    summary: list[tuple[str, str]] = []
    notes: list[str] = []
    rows = []
    figures: dict[str, object] = {}
    weekly: dict[str, tuple[float | None, ...]] = {}
    sag: dict[str, tuple[float | None, ...]] = {}
    dod: dict[str, tuple[float | None, ...]] = {}
    cells_max: dict[str, tuple[float | None, ...]] = {}
    for inv in site.inverters:
        data = buckets.get(inv.id)
        if data is None:
            notes.append(f"{inv.id}: no battery readings this month")
            continue
        b = assess(inv, month, data)
        pct = None if b.capacity_ah is None else 100 * b.capacity_ah / b.rated_ah
        if pct is None:
            notes.append(f"{inv.id}: no discharge of {MIN_SWING_PCT:.0f} points or more with complete readings: "
                         f"capacity not estimated")
            text = "capacity not estimated"
        else:
            text = f"{b.capacity_ah:.1f} Ah usable, {pct:.1f} % of rated {b.rated_ah:.1f} Ah"
            if pct < inv.capacity_alert_pct:
                text += f" — BELOW {inv.capacity_alert_pct:.0f} %: plan the replacement"
        summary.append((f"Battery of {inv.id}", f"{text}; {b.cycles:.1f} equivalent full cycles"))
        cells = cell_spread(month, data)
        if cells.max_mv is None:
            notes.append(f"{inv.id}: reports no cell voltages (cell_v_delta_mv, or cell_v_max and cell_v_min), so "
                         f"cell spread is not judged")
        else:
            trend = "" if cells.trend_mv_per_week is None else f", trend {cells.trend_mv_per_week:+.1f} mV a week"
            text = f"highest {cells.max_mv:.0f} mV, mean {cells.mean_mv:.0f} mV{trend}"
            if cells.max_mv > CELL_SPREAD_ALERT_MV:
                text += (f" — ABOVE {CELL_SPREAD_ALERT_MV:.0f} mV: have the cells balanced and look for a weak "
                         f"cell")
            summary.append((f"Cell spread of {inv.id}", text))
            cells_max[inv.id] = tuple(w["max_mv"] for w in cells.weekly)
        rows.append((inv.id, round(b.rated_ah, 1), None if b.capacity_ah is None else round(b.capacity_ah, 1),
                     None if pct is None else round(pct, 1), round(b.cycles, 2), b.swings_used,
                     *b.dod_histogram, None if cells.max_mv is None else round(cells.max_mv, 1),
                     None if cells.mean_mv is None else round(cells.mean_mv, 1),
                     None if cells.trend_mv_per_week is None else round(cells.trend_mv_per_week, 2)))
        figures[inv.id] = {"rated_ah": b.rated_ah, "capacity_ah": b.capacity_ah, "capacity_pct": pct,
                           "below_alert": pct is not None and pct < inv.capacity_alert_pct,
                           "weekly_capacity_ah": b.weekly_capacity_ah, "cycles": b.cycles,
                           "dod_histogram": b.dod_histogram, "weekly_sag_v_at_100a": b.weekly_sag_v,
                           "cell_spread": {"max_mv": cells.max_mv, "mean_mv": cells.mean_mv,
                                           "trend_mv_per_week": cells.trend_mv_per_week, "weekly": cells.weekly,
                                           "above_alert": cells.max_mv is not None
                                           and cells.max_mv > CELL_SPREAD_ALERT_MV}}
        weekly[inv.id] = tuple(b.weekly_capacity_ah)
        sag[inv.id] = tuple(b.weekly_sag_v)
        dod[inv.id] = tuple(float(v) for v in b.dod_histogram)
    weeks = tuple(f"week {i + 1}" for i in range(month.weeks))
    bins = tuple(f"{lo}-{lo + 10} %" for lo in DOD_BINS[:-1])
    table = Table("batteries", "Batteries", ("inverter", "rated_ah", "capacity_ah", "capacity_pct", "cycles",
                                             "discharges_used", *(f"dod_{b.replace(' %', '')}" for b in bins),
                                             "cell_spread_max_mv", "cell_spread_mean_mv",
                                             "cell_spread_trend_mv_per_week"),
                  tuple(rows))
    charts = (Chart("capacity", "Usable capacity by week (Ah)", weeks, weekly, "Ah", "lines"),
              Chart("sag", f"Voltage sag at {SAG_AT_A:.0f} A by week", weeks, sag, "V", "lines"),
              Chart("dod", "Depth of discharge", bins, dod, "discharges"))
    if cells_max:
        charts += (Chart("cells", "Highest cell spread by week (mV)", weeks, cells_max, "mV", "lines"),)
    return ReportDocument("battery", f"Battery health {month}", site.id, site.name, str(month), site.timezone,
                          tuple(summary), (table,), charts, tuple(notes), figures)


def battery_report(source: ReportSource, site: Site) -> ReportDocument:
    return battery_document(site, source.month, read_buckets(source))
