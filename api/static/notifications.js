// The notifications feed card: what the rules engine told people, newest first, polled every 5 s
// from GET /api/v1/notifications?after_id=N. Uses status.js's api() and el() and i18n.js's t();
// loaded after them.
"use strict";

const feed = { lastId: 0, entries: [], max: 20, timer: null };

function renderFeed() {
  const card = document.querySelector("#notifications");
  const list = el("ol", { class: "feed-list" });
  for (const entry of feed.entries) {
    const when = new Date(entry.at).toLocaleString(locale());
    list.append(el("li", { class: `feed-entry sev-${entry.severity} ${entry.status}` },
      el("div", { class: "feed-title", dir: "auto" }, entry.title),
      el("div", { class: "feed-meta" }, `${when} · ${entry.receiver} · ${entry.notification_id}`),
      el("pre", { class: "feed-body", dir: "auto" }, entry.body)));
  }
  card.replaceChildren(el("h2", {}, t("notifications")),
    feed.entries.length ? list : el("p", { class: "hint" }, t("notifications.none")));
  card.hidden = false;
}

async function pollFeed() {
  if (!state.key) return;
  try {
    const fresh = await api(`/notifications?after_id=${feed.lastId}&limit=${feed.max}`);
    if (fresh.length || feed.lastId === 0) {
      feed.lastId = Math.max(feed.lastId, ...fresh.map((e) => e.id));
      feed.entries = [...fresh, ...feed.entries].slice(0, feed.max);
      renderFeed();
    }
  } catch (err) {
    // The alerts card already says when the API is unreachable; the feed simply tries again.
  }
}

pollFeed();
feed.timer = setInterval(pollFeed, 5000);
