// facmon status page: loads the site tree, the incidents and the API's feed state, then follows the
// live event stream. No build step: plain JavaScript the API serves as is (i18n.js and charts.js load
// first). The key stays in localStorage; a sign-in link (`#key=…`, printed by `facmon up`) stores it
// the same way and is then taken out of the address bar.
"use strict";

const API = "/api/v1";
const STREAM_SILENCE_MS = 40_000;  // the API sends a keepalive every 15 s: this long without a byte is a dead stream
const state = {
  key: "", sites: new Map(), incidents: [], role: "", kinds: [],
  apiFeed: { mqtt_connected: null, since: null },  // GET /api/v1/feed: does the API hear the broker?
  pageLostAt: null,  // when this page's own live stream broke (null: live)
  lastUpdate: null,  // when the page last heard anything from the API
  live: false,  // the live stream is open
};
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function keyFromLink() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  if (!key) return false;
  localStorage.setItem("facmon.key", key.trim());
  // Out of the address bar, so the key is not left in screenshots, bookmarks or the history.
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options,
    headers: { Authorization: `Bearer ${state.key}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) { showLogin(t("key.invalid")); throw new Error("unauthorized"); }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw new Error(problem.detail || response.statusText);
  }
  return response.json();
}

function showLogin(message) {
  $("#login").hidden = false;
  showError(message || "");
}

function showError(message) { const e = $("#error"); e.textContent = message; e.hidden = !message; }

// --- words and numbers ------------------------------------------------------------------------------

const num = (v) => typeof v === "number" && Number.isFinite(v);
const fmt = (v, unit = "", digits = 0) => num(v) ? `${v.toFixed(digits)}${unit}` : "–";
const locale = () => (lang === "ur" ? "ur-PK" : "en-GB");

function watts(w) {
  if (!num(w)) return "–";
  return Math.abs(w) >= 1000 ? `${(w / 1000).toFixed(1)} kW` : `${Math.round(w)} W`;
}

function durationText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("duration.s", { s });
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? t("duration.hm", { h, m }) : t("duration.m", { m });
}

// A time as the site's clock shows it (its time zone), with the date when it is not today there.
function siteTime(iso, timeZone) {
  if (!iso) return "–";
  const when = new Date(iso);
  const day = (d) => d.toLocaleDateString("en-CA", { timeZone });
  const options = { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (day(when) !== day(new Date())) Object.assign(options, { day: "numeric", month: "short" });
  return new Intl.DateTimeFormat(locale(), options).format(when);
}

const clockTime = (date) => date.toLocaleTimeString(locale(), { hourCycle: "h23" });

// --- device cards -----------------------------------------------------------------------------------

// Which way power flows on a power-flow row: into the inverter (a source feeding the load) or out of it.
// The arrow points along the reading direction of the page, so it flips with Urdu's right-to-left.
function arrow(into) { return (into !== (lang === "ur")) ? "→" : "←"; }

function flowRow(part, dir, text, watt) {
  return el("div", { class: `flow-row ${part} ${dir}`, "data-flow": part, "data-dir": dir,
    "data-w": num(watt) ? String(Math.round(watt)) : null },
  el("span", { class: "flow-name" }, t(`flow.${part}`)),
  el("span", { class: "flow-arrow", title: dir === "in" ? t("flow.into") : dir === "out" ? t("flow.outof") : null },
    dir === "in" ? arrow(true) : dir === "out" ? arrow(false) : "·"),
  el("span", { class: "flow-value" }, text));
}

// Grid, solar, battery and load of one inverter. The grid's share is not measured: it is what the
// load and the charging take beyond solar (shown with ≈).
function powerFlow(d, m) {
  const batteryW = num(m.battery_v) && num(m.battery_a) ? m.battery_v * m.battery_a : null;  // + charging
  const rows = [];
  if (m.grid_ok === false) rows.push(flowRow("grid", "out-of-service", t("flow.grid.out")));
  else {
    const gridW = num(m.load_w) && num(m.pv_w) ? Math.max(0, m.load_w + (batteryW ?? 0) - m.pv_w) : null;
    rows.push(gridW > 5 ? flowRow("grid", "in", `≈ ${watts(gridW)}`, gridW)
      : flowRow("grid", "none", m.grid_ok ? t("flow.grid.standby") : "–", gridW));
  }
  rows.push(flowRow("solar", m.pv_w > 5 ? "in" : "none", watts(m.pv_w), m.pv_w));
  const soc = fmt(m.battery_soc_pct, " %");
  if (!num(batteryW)) rows.push(flowRow("battery", "none", soc));
  else if (batteryW < -5) {
    rows.push(flowRow("battery", "in", `${soc} · ${t("flow.discharging")} ${watts(-batteryW)}`, -batteryW));
  } else if (batteryW > 5) {
    rows.push(flowRow("battery", "out", `${soc} · ${t("flow.charging")} ${watts(batteryW)}`, batteryW));
  } else rows.push(flowRow("battery", "none", `${soc} · ${t("flow.idle")}`, 0));
  rows.push(flowRow("load", num(m.load_w) && m.load_w > 5 ? "out" : "none", watts(m.load_w), m.load_w));
  const flow = el("div", { class: "flow" }, ...rows);
  const notes = [];
  if (m.mode) notes.push(el("p", { class: "flow-mode" }, t("flow.mode", { mode: word("mode", m.mode) })));
  if (num(d.battery_runtime_s)) {  // the API gives a runtime only while the battery discharges
    notes.push(el("p", { class: "runtime" }, t("flow.runtime", { duration: durationText(d.battery_runtime_s) })));
  }
  return [flow, ...notes];
}

const yesNo = (v, yes, no) => (v === undefined || v === null) ? "–" : (v ? yes : no);
const CARDS = {
  inverter: (d, m) => ({ body: powerFlow(d, m), flag: m.grid_ok === false ? "grid-out" : "" }),
  uplink: (d, m, row) => {
    row(t("uplink.link"), yesNo(m.link_up, t("uplink.up"), t("uplink.down")));
    row(t("uplink.latency"), fmt(m.rtt_ms, " ms")); row(t("uplink.loss"), fmt(m.loss_pct, " %", 1));
    return { flag: m.link_up === false ? "link-down" : "" };
  },
  occupancy: (d, m, row) => {
    row(t("room.occupied"), yesNo(m.occupied, t("room.occupied"), t("room.empty")));
    if (m.people !== undefined && m.people !== null) row(t("room.people"), String(m.people));
    return {};
  },
  generator: (d, m, row) => {
    row(t("gen.state"), m.state ? word("genstate", m.state) : "–");
    row(t("gen.output"), watts(m.output_w)); row(t("gen.fuel"), fmt(m.fuel_pct, " %"));
    row(t("gen.engine"), fmt(m.engine_hours, " h"));
    if (m.coolant_temp_c !== undefined) row(t("gen.coolant"), fmt(m.coolant_temp_c, " °C"));
    return { flag: m.state === "fail_to_start" ? "gen-failed" : (m.running ? "gen-running" : "") };
  },
  plug: (d, m, row) => {
    row(t("plug.relay"), yesNo(m.relay_on, t("plug.on"), t("plug.off")));
    if (num(m.power_w)) row(t("plug.power"), watts(m.power_w));
    if (num(m.wifi_signal_dbm)) row(t("plug.signal"), fmt(m.wifi_signal_dbm, " dBm"));
    if (num(m.uptime_s)) row(t("plug.uptime"), durationText(m.uptime_s));
    return { flag: m.relay_on === false ? "plug-off" : "" };
  },
};

// A kind without a card here (a new one) shows its metrics with the units the contract gives
// (GET /api/v1/kinds), so every kind appears without a change to this file.
function genericRows(kind, m, row) {
  const spec = state.kinds.find((k) => k.kind === kind);
  for (const metric of (spec ? spec.metrics : []).filter((x) => x.type !== "label")) {
    const v = m[metric.name];
    row(metric.name, typeof v === "number" ? `${v}${metric.unit ? " " + metric.unit : ""}` : String(v ?? "–"));
  }
  return {};
}

function presenceText(d, site) {
  if (feedLost()) return t("presence.frozen");
  if (d.presence === "online") return t("presence.online");
  const why = d.reason === "stale" && d.last_seen ? t("reason.stale.since", { time: siteTime(d.last_seen, site.timezone) })
    : word("reason", d.reason);
  return `${t("presence.offline")} · ${why}`;
}

function deviceCard(d, site) {
  const m = (d.latest && d.latest.metrics) || {};
  const online = d.presence === "online";
  const title = el("h4", {},
    el("span", { class: "name", title: d.id }, d.name || d.label || d.id),
    el("span", { class: `presence ${feedLost() ? "frozen" : online ? "up" : "down"}`, "data-reason": d.reason },
      presenceText(d, site)));
  const rows = [];
  const row = (k, v) => rows.push(el("dt", {}, k), el("dd", {}, v));
  const shown = (CARDS[d.kind] || ((dev, metrics, r) => genericRows(dev.kind, metrics, r)))(d, m, row);
  const body = shown.body || [el("dl", {}, ...rows)];
  const card = el("div", { class: `card kind-${d.kind}`, "data-device": d.id }, title, ...body);
  if (shown.flag) card.classList.add(shown.flag);
  if (feedLost()) card.classList.add("frozen");
  return card;
}

// --- incidents --------------------------------------------------------------------------------------

const who = (acked) => String(acked).replace(/ \(key [^)]*\)$/, "");

function mutedItem(alert, site) {
  return el("li", { class: `muted-alert sev-${alert.labels.severity || "none"}`, "data-fingerprint": alert.fingerprint },
    el("strong", {}, alert.labels.alertname || alert.rule), " ",
    el("span", { class: "name" }, summaryOf(alert)), " ",
    el("span", { class: "started" }, t("incident.since", { time: siteTime(alert.active_since, site.timezone) })));
}

function incidentItem(incident, site) {
  const cause = incident.cause;
  const canAck = state.role === "operator" || state.role === "admin";
  const tz = site.timezone;
  const started = incident.started_at;
  const meta = [el("span", { class: "started", "data-started": started || "" }, t("incident.since", { time: siteTime(started, tz) }))];
  if (started) {
    meta.push(el("span", { class: "duration" },
      t("incident.for", { duration: durationText((Date.now() - Date.parse(started)) / 1000) })));
  }
  meta.push(el("span", { class: "state" }, word("state", cause.state)));
  if (cause.muted_by.some((m) => m.startsWith("silence:"))) meta.push(el("span", { class: "silenced" }, t("incident.silenced")));
  const ack = incident.acked_by
    ? el("em", { class: "acked", title: incident.acked_by }, t("incident.acked", { who: who(incident.acked_by), time: siteTime(incident.acked_at, tz) }))
    : (canAck ? el("button", { type: "button", class: "ack", onclick: () => acknowledge(incident.fingerprint) }, t("incident.ack")) : "");
  const muted = incident.muted.length ? el("details", { class: "muted" },
    el("summary", {}, t("incident.muted", { n: incident.muted.length })),
    el("ul", {}, ...incident.muted.map((a) => mutedItem(a, site)))) : "";
  return el("li", { class: `incident sev-${incident.severity || "none"}`, "data-fingerprint": incident.fingerprint },
    el("div", { class: "incident-head" },
      el("span", { class: "sev" }, word("sev", incident.severity)),
      el("strong", {}, cause.labels.alertname || cause.rule),
      el("span", { class: "name summary" }, summaryOf(cause))),
    el("div", { class: "incident-meta" }, ...meta), el("div", { class: "incident-ack" }, ack), muted);
}

function incidentList(site) {
  const items = state.incidents.filter((i) => i.site === site.id);
  if (!items.length) return el("p", { class: "none" }, t("incidents.none"));
  // <details> keeps the state the reader left it in across renders
  const open = new Set([...document.querySelectorAll(".incident details[open]")].map((d) => d.closest(".incident").dataset.fingerprint));
  const list = el("ul", {}, ...items.map((i) => incidentItem(i, site)));
  for (const details of list.querySelectorAll(".incident details")) {
    if (open.has(details.closest(".incident").dataset.fingerprint)) details.open = true;
  }
  return list;
}

async function acknowledge(fingerprint) {
  try {
    await api(`/incidents/${fingerprint}/ack`, { method: "POST", body: JSON.stringify({ comment: "from status page" }) });
    await loadIncidents();
    scheduleRender();
  } catch (err) { showError(t("ack.failed", { error: err.message })); }
}

// --- the page ---------------------------------------------------------------------------------------

const feedLost = () => state.apiFeed.mqtt_connected === false;

function siteSection(site) {
  let section = [...document.querySelectorAll("section.site")].find((s) => s.dataset.site === site.id);
  if (!section) {
    section = el("section", { class: "site", "data-site": site.id },
      el("h2", { class: "name" }), el("p", { class: "summary" }),
      el("div", { class: "incidents" }), el("div", { class: "devices" }), el("div", { class: "charts", dir: "ltr" }));
    $("#sites").append(section);
    loadCharts(site, section.querySelector(".charts"));
  }
  return section;
}

function kindTitle(kind, title) {
  return `kind.${kind}` in WORDS ? t(`kind.${kind}`) : `${title}s`;
}

function render() {
  for (const site of state.sites.values()) {
    const section = siteSection(site);
    section.querySelector("h2").textContent = site.name;
    const summary = [t("site.online", { online: site.online, total: site.devices })];
    if (site.in_load_shedding) summary.push(t("site.shedding"));
    section.querySelector(".summary").textContent = summary.join(" · ");
    section.querySelector(".incidents").replaceChildren(el("h3", {}, t("incidents")), incidentList(site));
    section.querySelector(".devices").replaceChildren(...state.kinds.map(({ kind, title }) => {
      const devices = site.device_list.filter((d) => d.kind === kind);
      return devices.length ? el("div", { "data-kind": kind }, el("h3", {}, kindTitle(kind, title)),
        el("div", { class: "grid" }, ...devices.map((d) => deviceCard(d, site)))) : "";
    }));
  }
  renderStatus();
}

function renderStatus() {
  const banner = $("#banner");
  let text = "";
  if (state.pageLostAt) text = t("banner.page", { time: clockTime(state.pageLostAt) });
  else if (feedLost()) {
    text = state.apiFeed.since ? t("banner.api", { time: clockTime(new Date(state.apiFeed.since)) }) : t("banner.api.start");
  }
  banner.textContent = text;
  banner.hidden = !text;
  banner.dataset.cause = state.pageLostAt ? "page" : (feedLost() ? "api" : "");
  const conn = $("#conn");
  const words = state.pageLostAt ? "conn.reconnecting" : (!state.live ? "conn.offline" : (feedLost() ? "conn.feedlost" : "conn.live"));
  conn.textContent = t(words);
  conn.className = `badge ${words === "conn.live" ? "on" : "off"}`;
  const updated = $("#updated");
  if (state.lastUpdate) {
    const ago = (Date.now() - state.lastUpdate) / 1000;
    updated.textContent = ago >= 60 ? t("updated.ago", { time: clockTime(new Date(state.lastUpdate)), ago: durationText(ago) })
      : t("updated", { time: clockTime(new Date(state.lastUpdate)) });
    updated.dataset.at = new Date(state.lastUpdate).toISOString();
  }
}

// "updated" is when data last arrived (a full load, a live event), not a keepalive: with the API's
// feed lost the stream stays open, and the time must then stand still.
function heard() { state.lastUpdate = Date.now(); }

async function loadIncidents() {
  try { state.incidents = await api("/incidents"); } catch (err) {
    // Kept as they were (an API without a rules store answers 503: the page shows the rest).
    if (err.message === "unauthorized") throw err;
  }
}

async function loadAll() {
  state.kinds = await api("/kinds");
  const summaries = await api("/sites");
  const details = await Promise.all(summaries.map((s) => api(`/sites/${s.id}`)));
  state.sites = new Map(details.map((d) => [d.id, d]));
  state.apiFeed = await api("/feed");
  await loadIncidents();
  heard();
  render();
}

function applyDevice(d) {
  const site = state.sites.get(d.site);
  if (!site) { loadAll().catch(() => {}); return; }
  const i = site.device_list.findIndex((x) => x.id === d.id);
  if (i >= 0) site.device_list[i] = d; else site.device_list.push(d);
  site.online = site.device_list.filter((x) => x.presence === "online").length;
  scheduleRender();
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

let incidentsPending = null;
function applyAlert() {  // a burst of transitions (an outage mutes a dozen alerts) is one reload
  clearTimeout(incidentsPending);
  incidentsPending = setTimeout(() => loadIncidents().then(scheduleRender).catch(() => {}), 200);
}

function pageLost() {
  if (!state.pageLostAt) state.pageLostAt = new Date();
  state.live = false;
  renderStatus();
}

// Server-sent events over fetch (EventSource cannot send the Authorization header). A stream that
// stays silent past the keepalive is treated as dead and reopened: a half-open connection (a laptop
// waking up, a proxy dropping it) must not leave a "live" page showing old data.
async function follow() {
  for (let attempt = 0; ; attempt++) {
    const abort = new AbortController();
    let watchdog = null;
    const kick = () => { clearTimeout(watchdog); watchdog = setTimeout(() => abort.abort(), STREAM_SILENCE_MS); };
    try {
      const response = await fetch(`${API}/events`, { headers: { Authorization: `Bearer ${state.key}` }, signal: abort.signal });
      if (response.status === 401) { showLogin(t("key.invalid")); return; }  // retrying cannot help
      if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
      kick();
      await loadAll();
      state.pageLostAt = null; state.live = true; attempt = 0;
      renderStatus();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        kick();
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          let type = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data && !handleEvent(type, JSON.parse(data))) return;
        }
      }
    } catch (err) { if (err.message === "unauthorized") return; } finally { clearTimeout(watchdog); }
    pageLost();
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** Math.min(attempt, 4), 15000)));
  }
}

function handleEvent(type, body) {
  heard();
  if (type === "reading" || type === "presence") applyDevice(body);
  else if (type === "alert") applyAlert();
  else if (type === "feed") { state.apiFeed = body; scheduleRender(); }
  else if (type === "revoked") { showLogin(t("key.revoked")); return false; }
  return true;
}

async function start() {
  if (!state.key) { showLogin(); return; }
  $("#login").hidden = true; showError("");
  try {
    const me = await api("/keys/me");
    state.role = me.role;
    await loadAll();
    follow();
  } catch (err) { if (err.message !== "unauthorized") showError(err.message); }
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("#key").value.trim();
  localStorage.setItem("facmon.key", state.key);
  start();
});
$("#change-key").addEventListener("click", () => showLogin());
$("#lang").addEventListener("click", () => {
  setLanguage(lang === "ur" ? "en" : "ur");
  render();
  redrawCharts();
  if (typeof renderFeed === "function" && !$("#notifications").hidden) renderFeed();
});
setInterval(() => { if (state.sites.size) scheduleRender(); }, 30_000);  // durations and "updated … ago" move on
setInterval(renderStatus, 5_000);

// A sign-in link opened in a tab already showing the page changes only the fragment: no reload.
window.addEventListener("hashchange", () => { if (keyFromLink()) location.reload(); });
keyFromLink();
state.key = localStorage.getItem("facmon.key") || "";
applyLanguage();
start();
