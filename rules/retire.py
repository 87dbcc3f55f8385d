"""Retiring a site or a device that is gone: its open alerts end, with the reason in their history,
and the rules engine stops judging it until it comes back.

    changes = retire_alerts(store, Retirement("testpark", None, at, by, reason))   # `facmon sites retire`
    changes = retire_alerts(store, Retirement("park", "inv-9", at, by, reason))    # `facmon devices forget`

An alert is the retirement's when its `site` label is the site and, for a device, its `device` label is
the device (a site's retirement covers its site-level alerts too). A pending alert goes back to
inactive, a firing one to resolved; the transition's summary is the reason, so the history says why
it ended. Nothing is deleted.

The retirement is recorded in the store after its alerts were ended; a running engine reads it when
the store changes (`Engine`, on its tick), takes the store's ended alerts instead of its own, and
drops what the retired devices would fire, until such a device announces itself `online` again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.alerts import Retirement
from rules.lifecycle import AlertLifecycle, Change

if TYPE_CHECKING:
    from rules.store import AlertStore


def retire_alerts(store: AlertStore, retirement: Retirement) -> list[Change]:
    """End the open (pending or firing) alerts `retirement` covers and record it; the changes made."""
    lifecycle = AlertLifecycle({})
    lifecycle.load(a for a in store.active_alerts(site=retirement.site) if retirement.covers(a.labels))
    changes = lifecycle.retire_where(retirement.covers, retirement.at, retirement.reason)
    for change in changes:
        store.save_alert(change.alert, change.transition)
    store.record_retirement(retirement)
    return changes

