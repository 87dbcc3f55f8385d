// The last 24 hours of a site from GET /api/v1/history, drawn with uPlot (vendor/uplot): state of
// charge with the grid's outages shaded, uplink latency and loss per ISP, people per room. Times on
// the site's clock. Uses status.js's api(), el() and state; loaded before it, called after it loads.
// `window.facmonCharts[site][chart]` keeps what each chart drew (its data and outage bands).
"use strict";

const CHART_HOURS = 24;
const CHART_INTERVAL = "5m";
const CHART_INTERVAL_S = 300;
const CHART_REFRESH_MS = 5 * 60_000;
const GRID_OUT_V = 1;  // a bucket whose lowest grid voltage is below this had the grid out
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const facmonCharts = {};
window.facmonCharts = facmonCharts;

const CHARTS = [
  { name: "soc", title: "charts.soc", kind: "inverter", metric: "battery_soc_pct", agg: "mean", range: [0, 100] },
  { name: "rtt", title: "charts.rtt", kind: "uplink", metric: "rtt_ms", agg: "mean" },
  { name: "loss", title: "charts.loss", kind: "uplink", metric: "loss_pct", agg: "mean" },
  { name: "people", title: "charts.people", kind: "occupancy", metric: "people", agg: "max" },
];

function historyPath(siteId, kind, metrics, agg, startIso, endIso) {
  const q = new URLSearchParams({ kind, start: startIso, end: endIso, interval: CHART_INTERVAL, agg });
  for (const metric of metrics) q.append("metrics", metric);
  return `/history/${encodeURIComponent(siteId)}?${q}`;
}

// The metrics the charts of `kind` read with `agg`: latency and loss, for the uplinks.
function chartMetrics(kind, agg) {
  return CHARTS.filter((c) => c.kind === kind && c.agg === agg).map((c) => c.metric);
}

// One request per kind, aggregate and metrics in a load of a site's charts, shared by the charts that
// ask for it: the latency and loss charts read one answer holding both.
function historyOf(site, range) {
  const [startIso, endIso] = range.map((s) => new Date(s * 1000).toISOString());
  const asked = new Map();
  return (kind, agg, metrics = chartMetrics(kind, agg)) => {
    const key = [kind, agg, ...metrics].join("/");
    if (!asked.has(key)) asked.set(key, api(historyPath(site.id, kind, metrics, agg, startIso, endIso)));
    return asked.get(key);
  };
}

// An answer for several metrics has a bucket wherever any of them has a value; keep the buckets, and
// the devices, with a value of `metric`: what an answer for `metric` alone would hold.
function seriesOf(series, metric) {
  return series.map((s) => {
    const values = s.values[metric] || [];
    const kept = s.times.flatMap((ts, i) => (values[i] == null ? [] : [i]));
    return { device: s.device, times: kept.map((i) => s.times[i]), values: { [metric]: kept.map((i) => values[i]) } };
  }).filter((s) => s.times.length > 0);
}

// One x axis (seconds) for every device's series; a device without a value in a bucket gets null
// there (uPlot leaves a gap).
function alignSeries(series, metric) {
  const xs = [...new Set(series.flatMap((s) => s.times.map((ts) => Date.parse(ts) / 1000)))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const column = new Array(xs.length).fill(null);
    s.times.forEach((ts, i) => { column[at.get(Date.parse(ts) / 1000)] = (s.values[metric] || [])[i] ?? null; });
    return column;
  });
  return [xs, ...ys];
}

// [start, end) seconds where any inverter's lowest grid voltage in a bucket shows the grid out, merged.
function outageBands(series, intervalS) {
  const starts = new Set();
  for (const s of series) {
    s.times.forEach((ts, i) => {
      const v = (s.values.grid_v || [])[i];
      if (typeof v === "number" && v < GRID_OUT_V) starts.add(Date.parse(ts) / 1000);
    });
  }
  const bands = [];
  for (const x of [...starts].sort((a, b) => a - b)) {
    const last = bands[bands.length - 1];
    if (last && last[1] >= x) last[1] = x + intervalS; else bands.push([x, x + intervalS]);
  }
  return bands;
}

function deviceName(siteId, deviceId) {
  const site = state.sites.get(siteId);
  const d = site && site.device_list.find((x) => x.id === deviceId);
  return d ? (d.name || d.label || d.id) : deviceId;
}

function shadeBands(bands) {
  return (u) => {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.fillStyle = "rgba(179, 38, 30, 0.15)";
    for (const [a, b] of bands) {
      const x0 = u.valToPos(a, "x", true), x1 = u.valToPos(b, "x", true);
      ctx.fillRect(x0, bbox.top, Math.max(x1 - x0, 1), bbox.height);
    }
    ctx.restore();
  };
}

function drawChart(entry, timeZone) {
  const { box, spec, data, labels, bands, range } = entry;
  if (entry.plot) { entry.plot.destroy(); entry.plot = null; }
  box.replaceChildren();
  if (data[0].length === 0) {
    box.append(el("h4", {}, t(spec.title)), el("p", { class: "hint" }, t("charts.empty")));
    return;
  }
  // the site's clock, 24-hour, like the rest of the page (uPlot's default is a 12-hour "9pm")
  const clock = new Intl.DateTimeFormat(locale(), { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const stamp = new Intl.DateTimeFormat(locale(), { timeZone, day: "numeric", month: "short", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23" });
  const options = {
    title: t(spec.title),
    width: Math.max(box.clientWidth, 260), height: 180,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), timeZone),
    scales: { x: { time: true, range: () => range }, y: spec.range ? { range: spec.range } : {} },
    series: [{ label: t("charts.time"), value: (u, ts) => (ts == null ? "–" : stamp.format(new Date(ts * 1000))) },
      ...labels.map((label, i) => ({ label, stroke: PALETTE[i % PALETTE.length], width: 1.5 }))],
    axes: [{ values: (u, splits) => splits.map((ts) => clock.format(new Date(ts * 1000))) }, { size: 44 }],
    hooks: { drawClear: [shadeBands(bands)] },
  };
  entry.plot = new uPlot(options, data, box);
}

async function loadChart(site, spec, box, range, history) {
  const entry = { box, spec, range, bands: [] };
  const series = seriesOf((await history(spec.kind, spec.agg)).series, spec.metric);
  entry.data = alignSeries(series, spec.metric);
  entry.labels = series.map((s) => deviceName(site.id, s.device));
  if (spec.name === "soc") {
    const grid = await history("inverter", "min", ["grid_v"]);
    entry.bands = outageBands(grid.series, grid.interval_s);
  }
  return entry;
}

async function loadCharts(site, container) {
  const end = Math.floor(Date.now() / 1000);
  const range = [end - CHART_HOURS * 3600, end];
  if (!container.childElementCount) {
    container.append(el("h3", { "data-t": "charts" }, t("charts")),
      el("div", { class: "chart-grid" }, ...CHARTS.map((spec) => el("div", { class: "chart", "data-chart": spec.name }))));
  }
  const drawn = facmonCharts[site.id] = facmonCharts[site.id] || {};
  const history = historyOf(site, range);
  for (const spec of CHARTS) {
    const box = container.querySelector(`[data-chart="${spec.name}"]`);
    try {
      const entry = await loadChart(site, spec, box, range, history);
      if (drawn[spec.name] && drawn[spec.name].plot) drawn[spec.name].plot.destroy();
      drawn[spec.name] = entry;
      drawChart(entry, site.timezone);
    } catch (err) {
      if (err.message === "unauthorized") return;
      box.replaceChildren(el("p", { class: "hint" }, t("charts.unavailable", { error: err.message })));
    }
  }
  container.dataset.loaded = new Date().toISOString();
  clearTimeout(container.refresh);
  container.refresh = setTimeout(() => loadCharts(site, container), CHART_REFRESH_MS);
}

function redrawCharts() {
  for (const [siteId, drawn] of Object.entries(facmonCharts)) {
    const site = state.sites.get(siteId);
    for (const entry of Object.values(drawn)) if (entry.data) drawChart(entry, site ? site.timezone : "UTC");
  }
}

let resizePending = null;
window.addEventListener("resize", () => {
  clearTimeout(resizePending);
  resizePending = setTimeout(() => {
    for (const drawn of Object.values(facmonCharts)) {
      for (const entry of Object.values(drawn)) {
        if (entry.plot) entry.plot.setSize({ width: Math.max(entry.box.clientWidth, 260), height: 180 });
      }
    }
  }, 150);
});
