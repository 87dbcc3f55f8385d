// The page's words in English and Urdu, and the language switch (Urdu lays the page out right to left).
// t(key, {name: value}) fills {name} placeholders; a key missing in Urdu falls back to English.
"use strict";

// Each key: [English, Urdu].
const WORDS = {
  "lang.toggle": ["اردو", "English"],
  "key.button": ["Key", "کلید"],
  "key.label": ["API key", "API کلید"],
  "key.open": ["Open", "کھولیں"],
  "key.hint": [
    "Ask an admin for a key (facmon keys create --name WHO --role viewer), or open the link `facmon up` prints. The key stays in this browser only.",
    "کلید کے لیے ایڈمن سے کہیں (facmon keys create --name WHO --role viewer)، یا وہ لنک کھولیں جو `facmon up` دکھاتا ہے۔ کلید صرف اسی براؤزر میں رہتی ہے۔"],
  "key.invalid": ["That key is not valid.", "یہ کلید درست نہیں۔"],
  "key.revoked": ["This key was revoked.", "یہ کلید منسوخ کر دی گئی ہے۔"],
  "conn.live": ["live", "براہ راست"],
  "conn.reconnecting": ["reconnecting", "دوبارہ جڑ رہا ہے"],
  "conn.offline": ["offline", "منقطع"],
  "conn.feedlost": ["feed lost", "آلات سے رابطہ منقطع"],
  "updated": ["updated {time}", "آخری اپڈیٹ {time}"],
  "updated.ago": ["updated {time} ({ago} ago)", "آخری اپڈیٹ {time} ({ago} پہلے)"],
  "banner.page": [
    "Live updates stopped at {time}; reconnecting. What you see is as of then.",
    "{time} سے براہ راست اپڈیٹ رکی ہوئی ہیں؛ دوبارہ جڑ رہے ہیں۔ دکھائی گئی معلومات اسی وقت کی ہیں۔"],
  "banner.api": [
    "The server lost its feed from the devices at {time}. Device states below are the last known ones: the devices are not known to be offline.",
    "{time} سے سرور کو آلات کی معلومات نہیں مل رہیں۔ نیچے آلات کی آخری معلوم حالت ہے: یہ معلوم نہیں کہ آلات بند ہیں۔"],
  "banner.api.start": [
    "The server is not yet connected to the devices' feed. Device states below are not live.",
    "سرور ابھی آلات سے نہیں جڑا۔ نیچے کی حالت براہ راست نہیں۔"],
  "site.online": ["{online}/{total} devices online", "{total} میں سے {online} آلات آن لائن"],
  "site.shedding": ["load-shedding now", "ابھی لوڈ شیڈنگ ہے"],
  "incidents": ["Active incidents", "جاری مسائل"],
  "incidents.none": ["No active incidents.", "کوئی جاری مسئلہ نہیں۔"],
  "incident.since": ["since {time}", "{time} سے"],
  "incident.for": ["for {duration}", "{duration} سے جاری"],
  "incident.acked": ["acknowledged by {who} at {time}", "{who} نے {time} پر تسلیم کیا"],
  "incident.ack": ["Acknowledge", "تسلیم کریں"],
  "incident.muted": ["{n} more alerts caused by this (muted)", "اس کی وجہ سے مزید {n} الرٹ (خاموش)"],
  "incident.silenced": ["silenced", "خاموش کردہ"],
  "ack.failed": ["Acknowledge failed: {error}", "تسلیم نہیں ہو سکا: {error}"],
  "state.firing": ["firing", "فعال"],
  "state.pending": ["pending", "زیر غور"],
  "sev.critical": ["critical", "سنگین"],
  "sev.warning": ["warning", "انتباہ"],
  "sev.info": ["info", "اطلاع"],
  "kind.inverter": ["Power", "بجلی"],
  "kind.uplink": ["Internet", "انٹرنیٹ"],
  "kind.occupancy": ["Rooms", "کمرے"],
  "kind.generator": ["Generators", "جنریٹر"],
  "kind.plug": ["Plugs", "پلگ"],
  "plug.relay": ["Relay", "ریلے"],
  "plug.on": ["on", "آن"],
  "plug.off": ["off", "آف"],
  "plug.power": ["Load", "لوڈ"],
  "plug.signal": ["Wi-Fi signal", "وائی فائی سگنل"],
  "plug.uptime": ["Up for", "چلتے ہوئے"],
  "presence.online": ["online", "آن لائن"],
  "presence.offline": ["offline", "آف لائن"],
  "presence.frozen": ["last known", "آخری معلوم"],
  "reason.reporting": ["reporting", "رپورٹ کر رہا ہے"],
  "reason.announced_offline": ["said it went offline", "آلے نے خود آف لائن بتایا"],
  "reason.stale": ["no reading for a while", "کچھ دیر سے کوئی ریڈنگ نہیں"],
  "reason.stale.since": ["silent since {time}", "{time} سے کوئی ریڈنگ نہیں"],
  "reason.no_reading_yet": ["not heard from yet", "ابھی تک کوئی ریڈنگ نہیں"],
  "flow.grid": ["Grid", "گرڈ"],
  "flow.solar": ["Solar", "سولر"],
  "flow.battery": ["Battery", "بیٹری"],
  "flow.load": ["Load", "لوڈ"],
  "flow.grid.out": ["out", "بند"],
  "flow.grid.standby": ["standby", "تیار"],
  "flow.charging": ["charging", "چارج ہو رہی ہے"],
  "flow.into": ["feeds the inverter", "انورٹر کو بجلی دے رہا ہے"],
  "flow.outof": ["fed by the inverter", "انورٹر سے بجلی لے رہا ہے"],
  "flow.discharging": ["discharging", "استعمال ہو رہی ہے"],
  "flow.idle": ["idle", "ساکن"],
  "flow.runtime": ["about {duration} left", "تقریباً {duration} باقی"],
  "flow.mode": ["running on {mode}", "{mode} پر چل رہا ہے"],
  "mode.grid": ["grid", "گرڈ"],
  "mode.battery": ["battery", "بیٹری"],
  "mode.solar": ["solar", "سولر"],
  "mode.generator": ["generator", "جنریٹر"],
  "mode.fault": ["FAULT", "خرابی"],
  "mode.bypass": ["bypass", "بائی پاس"],
  "uplink.link": ["link", "لنک"],
  "uplink.up": ["up", "چالو"],
  "uplink.down": ["DOWN", "بند"],
  "uplink.latency": ["latency", "تاخیر"],
  "uplink.loss": ["loss", "پیکٹ لاس"],
  "room.occupied": ["occupied", "زیر استعمال"],
  "room.empty": ["empty", "خالی"],
  "room.people": ["people", "لوگ"],
  "gen.state": ["state", "حالت"],
  "gen.output": ["output", "پیداوار"],
  "gen.fuel": ["fuel", "ایندھن"],
  "gen.engine": ["engine", "انجن"],
  "gen.coolant": ["coolant", "کولنٹ"],
  "genstate.fail_to_start": ["FAILED TO START", "اسٹارٹ نہیں ہوا"],
  "genstate.running": ["running", "چل رہا ہے"],
  "genstate.off": ["off", "بند"],
  "genstate.cranking": ["cranking", "اسٹارٹ ہو رہا ہے"],
  "genstate.cooldown": ["cooling down", "ٹھنڈا ہو رہا ہے"],
  "yes": ["yes", "ہاں"],
  "no": ["no", "نہیں"],
  "duration.hm": ["{h} h {m} min", "{h} گھنٹے {m} منٹ"],
  "duration.m": ["{m} min", "{m} منٹ"],
  "duration.s": ["{s} s", "{s} سیکنڈ"],
  "charts": ["Last 24 hours", "پچھلے 24 گھنٹے"],
  "charts.time": ["Time", "وقت"],
  "charts.soc": ["Battery charge (%) — shaded: grid out", "بیٹری چارج (٪) — سایہ: گرڈ بند"],
  "charts.rtt": ["Internet latency (ms)", "انٹرنیٹ تاخیر (ms)"],
  "charts.loss": ["Internet packet loss (%)", "انٹرنیٹ پیکٹ لاس (٪)"],
  "charts.people": ["People per room", "کمروں میں لوگ"],
  "charts.unavailable": ["History is unavailable: {error}", "تاریخ دستیاب نہیں: {error}"],
  "charts.empty": ["No data in the last 24 hours.", "پچھلے 24 گھنٹوں میں کوئی ڈیٹا نہیں۔"],
  "notifications": ["Notifications", "اطلاعات"],
  "notifications.none": ["No notifications yet.", "ابھی کوئی اطلاع نہیں۔"],
};

const LANGS = ["en", "ur"];
let lang = LANGS.includes(localStorage.getItem("facmon.lang")) ? localStorage.getItem("facmon.lang") : "en";

function t(key, vars = {}) {
  const text = (WORDS[key] || [])[LANGS.indexOf(lang)] ?? (WORDS[key] || [key])[0];
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// Words for an API value (a state, a reason, a mode) with a prefix; the raw value when there is none,
// so a value added to the API later still shows.
function word(prefix, value) {
  const key = `${prefix}.${value}`;
  return (key in WORDS) ? t(key) : String(value ?? "–");
}

// Urdu texts of the alerts come from the rules' `summary_ur` annotations where a rule has one.
function summaryOf(alert) {
  const a = alert.annotations || {};
  return (lang === "ur" && a.summary_ur) || a.summary || alert.labels.device || "";
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "ur" ? "rtl" : "ltr";
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
}

function setLanguage(next) {
  lang = next;
  localStorage.setItem("facmon.lang", lang);
  applyLanguage();
}
