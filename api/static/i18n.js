// The page's words in English and Urdu, and the language switch (Urdu lays the page out right to left).
// t(key, {name: value}) fills {name} placeholders; a key missing in Urdu falls back to English.
"use strict";

const STRINGS = {
  en: {
    "lang.toggle": "اردو", "key.button": "Key", "key.label": "API key", "key.open": "Open",
    "key.hint": "Ask an admin for a key (facmon keys create --name WHO --role viewer), or open the link "
      + "`facmon up` prints. The key stays in this browser only.",
    "key.invalid": "That key is not valid.", "key.revoked": "This key was revoked.",
    "conn.live": "live", "conn.reconnecting": "reconnecting", "conn.offline": "offline", "conn.feedlost": "feed lost",
    "updated": "updated {time}", "updated.ago": "updated {time} ({ago} ago)",
    "banner.page": "Live updates stopped at {time}; reconnecting. What you see is as of then.",
    "banner.api": "The server lost its feed from the devices at {time}. Device states below are the last "
      + "known ones: the devices are not known to be offline.",
    "banner.api.start": "The server is not yet connected to the devices' feed. Device states below are not live.",
    "site.online": "{online}/{total} devices online", "site.shedding": "load-shedding now",
    "incidents": "Active incidents", "incidents.none": "No active incidents.",
    "incident.since": "since {time}", "incident.for": "for {duration}",
    "incident.acked": "acknowledged by {who} at {time}", "incident.ack": "Acknowledge",
    "incident.muted": "{n} more alerts caused by this (muted)", "incident.silenced": "silenced",
    "ack.failed": "Acknowledge failed: {error}",
    "state.firing": "firing", "state.pending": "pending",
    "sev.critical": "critical", "sev.warning": "warning", "sev.info": "info",
    "kind.inverter": "Power", "kind.uplink": "Internet", "kind.occupancy": "Rooms", "kind.generator": "Generators",
    "presence.online": "online", "presence.offline": "offline", "presence.frozen": "last known",
    "reason.reporting": "reporting", "reason.announced_offline": "said it went offline",
    "reason.stale": "no reading for a while", "reason.no_reading_yet": "not heard from yet",
    "flow.grid": "Grid", "flow.solar": "Solar", "flow.battery": "Battery", "flow.load": "Load",
    "flow.grid.out": "out", "flow.grid.standby": "standby", "flow.charging": "charging",
    "flow.into": "feeds the inverter", "flow.outof": "fed by the inverter",
    "flow.discharging": "discharging", "flow.idle": "idle", "flow.runtime": "about {duration} left",
    "flow.mode": "running on {mode}", "mode.grid": "grid", "mode.battery": "battery", "mode.solar": "solar",
    "mode.generator": "generator", "mode.fault": "FAULT", "mode.bypass": "bypass",
    "uplink.link": "link", "uplink.up": "up", "uplink.down": "DOWN", "uplink.latency": "latency",
    "uplink.loss": "loss", "room.occupied": "occupied", "room.empty": "empty", "room.people": "people",
    "gen.state": "state", "gen.output": "output", "gen.fuel": "fuel", "gen.engine": "engine",
    "gen.coolant": "coolant", "genstate.fail_to_start": "FAILED TO START", "genstate.running": "running", "genstate.off": "off",
    "genstate.cranking": "cranking", "genstate.cooldown": "cooling down",
    "yes": "yes", "no": "no",
    "duration.hm": "{h} h {m} min", "duration.m": "{m} min", "duration.s": "{s} s",
    "charts": "Last 24 hours", "charts.soc": "Battery charge (%) — shaded: grid out",
    "charts.rtt": "Internet latency (ms)", "charts.loss": "Internet packet loss (%)",
    "charts.people": "People per room", "charts.unavailable": "History is unavailable: {error}",
    "charts.empty": "No data in the last 24 hours.",
    "notifications": "Notifications", "notifications.none": "No notifications yet.",
  },
  ur: {
    "lang.toggle": "English", "key.button": "کلید", "key.label": "API کلید", "key.open": "کھولیں",
    "key.hint": "کلید کے لیے ایڈمن سے کہیں (facmon keys create --name WHO --role viewer)، یا وہ لنک کھولیں "
      + "جو `facmon up` دکھاتا ہے۔ کلید صرف اسی براؤزر میں رہتی ہے۔",
    "key.invalid": "یہ کلید درست نہیں۔", "key.revoked": "یہ کلید منسوخ کر دی گئی ہے۔",
    "conn.live": "براہ راست", "conn.reconnecting": "دوبارہ جڑ رہا ہے", "conn.offline": "منقطع",
    "conn.feedlost": "آلات سے رابطہ منقطع",
    "updated": "آخری اپڈیٹ {time}", "updated.ago": "آخری اپڈیٹ {time} ({ago} پہلے)",
    "banner.page": "{time} سے براہ راست اپڈیٹ رکی ہوئی ہیں؛ دوبارہ جڑ رہے ہیں۔ دکھائی گئی معلومات اسی وقت کی ہیں۔",
    "banner.api": "{time} سے سرور کو آلات کی معلومات نہیں مل رہیں۔ نیچے آلات کی آخری معلوم حالت ہے: "
      + "یہ معلوم نہیں کہ آلات بند ہیں۔",
    "banner.api.start": "سرور ابھی آلات سے نہیں جڑا۔ نیچے کی حالت براہ راست نہیں۔",
    "site.online": "{total} میں سے {online} آلات آن لائن", "site.shedding": "ابھی لوڈ شیڈنگ ہے",
    "incidents": "جاری مسائل", "incidents.none": "کوئی جاری مسئلہ نہیں۔",
    "incident.since": "{time} سے", "incident.for": "{duration} سے جاری",
    "incident.acked": "{who} نے {time} پر تسلیم کیا", "incident.ack": "تسلیم کریں",
    "incident.muted": "اس کی وجہ سے مزید {n} الرٹ (خاموش)", "incident.silenced": "خاموش کردہ",
    "ack.failed": "تسلیم نہیں ہو سکا: {error}",
    "state.firing": "فعال", "state.pending": "زیر غور",
    "sev.critical": "سنگین", "sev.warning": "انتباہ", "sev.info": "اطلاع",
    "kind.inverter": "بجلی", "kind.uplink": "انٹرنیٹ", "kind.occupancy": "کمرے", "kind.generator": "جنریٹر",
    "presence.online": "آن لائن", "presence.offline": "آف لائن", "presence.frozen": "آخری معلوم",
    "reason.reporting": "رپورٹ کر رہا ہے", "reason.announced_offline": "آلے نے خود آف لائن بتایا",
    "reason.stale": "کچھ دیر سے کوئی ریڈنگ نہیں", "reason.no_reading_yet": "ابھی تک کوئی ریڈنگ نہیں",
    "flow.grid": "گرڈ", "flow.solar": "سولر", "flow.battery": "بیٹری", "flow.load": "لوڈ",
    "flow.grid.out": "بند", "flow.grid.standby": "تیار", "flow.charging": "چارج ہو رہی ہے",
    "flow.into": "انورٹر کو بجلی دے رہا ہے", "flow.outof": "انورٹر سے بجلی لے رہا ہے",
    "flow.discharging": "استعمال ہو رہی ہے", "flow.idle": "ساکن", "flow.runtime": "تقریباً {duration} باقی",
    "flow.mode": "{mode} پر چل رہا ہے", "mode.grid": "گرڈ", "mode.battery": "بیٹری", "mode.solar": "سولر",
    "mode.generator": "جنریٹر", "mode.fault": "خرابی", "mode.bypass": "بائی پاس",
    "uplink.link": "لنک", "uplink.up": "چالو", "uplink.down": "بند", "uplink.latency": "تاخیر",
    "uplink.loss": "پیکٹ لاس", "room.occupied": "زیر استعمال", "room.empty": "خالی", "room.people": "لوگ",
    "gen.state": "حالت", "gen.output": "پیداوار", "gen.fuel": "ایندھن", "gen.engine": "انجن",
    "gen.coolant": "کولنٹ", "genstate.fail_to_start": "اسٹارٹ نہیں ہوا", "genstate.running": "چل رہا ہے", "genstate.off": "بند",
    "genstate.cranking": "اسٹارٹ ہو رہا ہے", "genstate.cooldown": "ٹھنڈا ہو رہا ہے",
    "yes": "ہاں", "no": "نہیں",
    "duration.hm": "{h} گھنٹے {m} منٹ", "duration.m": "{m} منٹ", "duration.s": "{s} سیکنڈ",
    "charts": "پچھلے 24 گھنٹے", "charts.soc": "بیٹری چارج (٪) — سایہ: گرڈ بند",
    "charts.rtt": "انٹرنیٹ تاخیر (ms)", "charts.loss": "انٹرنیٹ پیکٹ لاس (٪)",
    "charts.people": "کمروں میں لوگ", "charts.unavailable": "تاریخ دستیاب نہیں: {error}",
    "charts.empty": "پچھلے 24 گھنٹوں میں کوئی ڈیٹا نہیں۔",
    "notifications": "اطلاعات", "notifications.none": "ابھی کوئی اطلاع نہیں۔",
  },
};

const LANGS = Object.keys(STRINGS);
let lang = LANGS.includes(localStorage.getItem("facmon.lang")) ? localStorage.getItem("facmon.lang") : "en";

function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// Words for an API value (a state, a reason, a mode) with a prefix; the raw value when there is none,
// so a value added to the API later still shows.
function word(prefix, value) {
  const key = `${prefix}.${value}`;
  return (key in STRINGS.en) ? t(key) : String(value ?? "–");
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
