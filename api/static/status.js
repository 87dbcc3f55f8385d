// facmon status page: loads the site tree and active alerts, then follows the live event stream.
// No build step: plain JavaScript the API serves as is. The key stays in localStorage.
"use strict";

const API = "/api/v1";
const state = { key: localStorage.getItem("facmon.key") || "", sites: new Map(), alerts: new Map(), role: "",
  kinds: [] };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options,
    headers: { Authorization: `Bearer ${state.key}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) { showLogin("That key is not valid."); throw new Error("unauthorized"); }
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

const fmt = (v, unit = "", digits = 0) => (v === null || v === undefined) ? "–" : `${Number(v).toFixed(digits)}${unit}`;
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "not draining";
  const h = Math.floor(seconds / 3600), m = Math.round((seconds % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}

// What a card shows per kind; a kind without an entry (a new one) shows its metrics with the units
// the contract gives (GET /api/v1/kinds), so every kind appears without a change here.
const onOff = (v, on, off) => (v === undefined || v === null) ? "–" : (v ? on : off);
const CARDS = {
  inverter: (d, m, row) => {
    row("grid", onOff(m.grid_ok, "on", "OUT"));
    row("mode", m.mode ?? "–");
    row("battery", fmt(m.battery_soc_pct, " %", 0));
    row("runtime", duration(d.battery_runtime_s));
    row("PV", fmt(m.pv_w, " W")); row("load", fmt(m.load_w, " W"));
    return m.grid_ok === false ? "grid-out" : "";
  },
  uplink: (d, m, row) => {
    row("link", onOff(m.link_up, "up", "DOWN"));
    row("latency", fmt(m.rtt_ms, " ms", 0)); row("loss", fmt(m.loss_pct, " %", 1));
    return "";
  },
  occupancy: (d, m, row) => {
    row("occupied", onOff(m.occupied, "yes", "no"));
    row("people", m.people ?? "–");
    return "";
  },
  generator: (d, m, row) => {
    row("state", m.state === "fail_to_start" ? "FAILED TO START" : (m.state ?? "–"));
    row("output", fmt(m.output_w, " W"));
    row("fuel", fmt(m.fuel_pct, " %", 0));
    row("engine", fmt(m.engine_hours, " h", 0));
    if (m.coolant_temp_c !== undefined) row("coolant", fmt(m.coolant_temp_c, " °C", 0));
    return m.state === "fail_to_start" ? "gen-failed" : (m.running ? "gen-running" : "");
  },
};

function genericRows(kind, m, row) {
  const spec = state.kinds.find((k) => k.kind === kind);
  for (const metric of (spec ? spec.metrics : []).filter((x) => x.type !== "label")) {
    const v = m[metric.name];
    row(metric.name, typeof v === "number" ? `${v}${metric.unit ? " " + metric.unit : ""}` : String(v ?? "–"));
  }
  return "";
}

function deviceCard(d) {
  const m = (d.latest && d.latest.metrics) || {};
  const online = d.presence === "online";
  const title = el("h3", {}, el("span", { class: "name" }, d.label ? `${d.label}` : d.id),
    el("span", { class: online ? "up" : "down", title: d.reason }, online ? "online" : `offline (${d.reason})`));
  const rows = [];
  const row = (k, v) => rows.push(el("dt", {}, k), el("dd", {}, v));
  const flag = (CARDS[d.kind] || ((dev, metrics, r) => genericRows(dev.kind, metrics, r)))(d, m, row);
  const card = el("div", { class: `card kind-${d.kind}`, "data-device": d.id }, title, el("dl", {}, ...rows));
  if (flag) card.classList.add(flag);
  return card;
}

function incidentList(siteId) {
  const items = [...state.alerts.values()].filter((a) => a.labels.site === siteId);
  if (!items.length) return el("p", { class: "none" }, "No active incidents.");
  const canAck = state.role === "operator" || state.role === "admin";
  return el("ul", {}, ...items.map((a) => el("li", { "data-fingerprint": a.fingerprint },
    el("span", { class: `sev-${a.labels.severity || "none"}` }, a.labels.severity || ""),
    el("strong", {}, a.labels.alertname || a.rule),
    el("span", { class: "name" }, a.annotations.summary || a.labels.device || ""),
    el("span", {}, a.state),
    a.acked_by ? el("em", { class: "acked" }, `acknowledged by ${a.acked_by}`)
      : (canAck ? el("button", { type: "button", class: "ack", onclick: () => acknowledge(a.fingerprint) },
        "Acknowledge") : ""))));
}

function render() {
  const main = $("#sites");
  main.replaceChildren(...[...state.sites.values()].map((site) => {
    const groups = state.kinds.map(({ kind, title }) => {
      const devices = site.device_list.filter((d) => d.kind === kind);
      return devices.length ? el("div", { "data-kind": kind }, el("h4", {}, `${title}s`),
        el("div", { class: "grid" }, ...devices.map(deviceCard))) : "";
    });
    return el("section", { class: "site", "data-site": site.id },
      el("h2", { class: "name" }, site.name),
      el("p", {}, `${site.online}/${site.devices} devices online`, site.in_load_shedding ? " · load-shedding now" : ""),
      el("div", { class: "incidents" }, el("h4", {}, "Active incidents"), incidentList(site.id)), ...groups);
  }));
}

async function acknowledge(fingerprint) {
  try {
    const alert = await api(`/alerts/${fingerprint}/ack`, { method: "POST", body: JSON.stringify({ comment: "from status page" }) });
    state.alerts.set(alert.fingerprint, alert);
    render();
  } catch (err) { showError(`Acknowledge failed: ${err.message}`); }
}

async function loadAll() {
  state.kinds = await api("/kinds");
  const summaries = await api("/sites");
  const details = await Promise.all(summaries.map((s) => api(`/sites/${s.id}`)));
  state.sites = new Map(details.map((d) => [d.id, d]));
  try {
    const alerts = await api("/alerts");
    state.alerts = new Map(alerts.map((a) => [a.fingerprint, a]));
  } catch (err) { state.alerts = new Map(); }
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

async function applyAlert(event) {
  if (!event.fingerprint) return;
  try {
    const alerts = await api("/alerts");
    state.alerts = new Map(alerts.map((a) => [a.fingerprint, a]));
    scheduleRender();
  } catch (err) { /* shown on the next full load */ }
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
async function follow() {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(`${API}/events`, { headers: { Authorization: `Bearer ${state.key}` } });
      if (response.status === 401) { showLogin("That key is not valid."); return; }  // retrying cannot help
      if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
      $("#conn").textContent = "live"; $("#conn").className = "badge on";
      await loadAll();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          let type = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (!data) continue;
          const body = JSON.parse(data);
          if (type === "reading" || type === "presence") applyDevice(body);
          else if (type === "alert") applyAlert(body);
          else if (type === "revoked") { showLogin("This key was revoked."); return; }
        }
      }
    } catch (err) { if (err.message === "unauthorized") return; }
    $("#conn").textContent = "reconnecting"; $("#conn").className = "badge off";
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** Math.min(attempt, 4), 15000)));
  }
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
start();
