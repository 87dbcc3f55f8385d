"""`facmon up` prints each new feed entry as one NOTIFY line, oldest first, and nothing twice."""

from __future__ import annotations

import io

from core.clock import FakeClock
from facmon.commands.notify import print_new_feed
from rules.store import AlertStore, FeedEntry


def test_new_feed_entries_are_printed_once_oldest_first(tmp_path):
    store = AlertStore(tmp_path / "alerts.db", FakeClock())
    for n, (status, severity) in enumerate((("firing", "critical"), ("resolved", "none")), start=1):
        store.add_feed_entry(FeedEntry(0, 0.0, "default", f"fmn-{n}-x", status, severity, "park",
                                       f"[{status.upper()}] park: 1 alert(s) — Grid down",
                                       "facmon incident at park:\n"
                                       "- [critical] GridOutage: Grid down (since 05:00 PKT)"))
    store.add_feed_entry(FeedEntry(0, 0.0, "default", "fmn-1-x", "firing", "critical", "park", "again", ""))
    out = io.StringIO()
    last = print_new_feed(store, 0, out)
    assert out.getvalue().splitlines() == [
        "NOTIFY [critical] [FIRING] park: 1 alert(s) — Grid down | - [critical] GridOutage: Grid down (since 05:00 "
        "PKT) | receiver default",
        "NOTIFY [none] [RESOLVED] park: 1 alert(s) — Grid down | - [critical] GridOutage: Grid down (since 05:00 "
        "PKT) | receiver default"]
    assert last == 2
    again = io.StringIO()
    assert print_new_feed(store, last, again) == 2 and again.getvalue() == ""
    store.close()
