"""The notification parts of the rules store: the feed and delivery tables are added to a database
made before them, a failover is atomic and records who delivered, nothing else of the store changes."""

from __future__ import annotations

import sqlite3

from core.clock import FakeClock
from rules.store import AlertStore, FeedEntry


def test_an_older_database_gains_the_feed_and_deliveries_and_keeps_its_outbox(tmp_path):
    path = tmp_path / "alerts.db"
    store = AlertStore(path, FakeClock())
    row = store.enqueue_notification("g", "oncall:webhook0", ["fp"], {"alerts": []}, 1.0)
    store.close()
    with sqlite3.connect(path) as db:  # as a database from before this change
        db.execute("DROP TABLE feed")
        db.execute("DROP TABLE deliveries")
    store = AlertStore(path, FakeClock())
    assert [n.id for n in store.notifications()] == [row]
    assert store.add_feed_entry(FeedEntry(0, 2.0, "oncall", "fmn-1-x", "firing", "critical", "park", "t", "b")) == 1
    assert store.add_feed_entry(FeedEntry(0, 3.0, "oncall", "fmn-1-x", "firing", "critical", "park", "t", "b")) == 0
    assert [e.at for e in store.feed()] == [2.0]
    store.close()


def test_fail_over_moves_a_pending_row_to_the_sms_targets_once(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    payload = {"alerts": [], "facmon": {"reason": "new"}}
    row = store.enqueue_notification("g", "oncall:telegram0", ["fp"], payload, 1.0)
    [record] = store.notifications()
    new = store.fail_over(record, ("oncall:gsm1", "oncall:gsm2"), 5.0, "failed over: 502")
    assert len(new) == 2
    assert store.fail_over(record, ("oncall:gsm1",), 6.0, "again") == []  # never a second SMS
    rows = {n.id: n for n in store.notifications()}
    assert rows[row].status == "failed_over" and rows[row].last_error == "failed over: 502"
    assert rows[new[0]].payload["facmon"] == {"reason": "new", "failover_of": row}
    assert store.outbox_depth() == 2
    assert store.delivered_via(row) is None
    store.mark_sent(new[1], 7.0)
    store.record_delivery(new[1], "oncall:gsm2", 7.0, row)
    assert store.delivered_via(row) == "oncall:gsm2" and store.delivered_via(new[1]) == "oncall:gsm2"
    store.close()
