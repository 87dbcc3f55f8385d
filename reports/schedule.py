"""The reports' cron jobs (`facmon report serve`): one job per site on an APScheduler 3.x scheduler,
firing at a time of the site's own zone; the monthly mail and the daily store are both set up here.

    schedule_per_site(scheduler, mail.send_previous_month, trigger_of, sites, "monthly-mail",
                      "monthly reports of {site}")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from core.site import Site

MISFIRE_GRACE_S = 6 * 3600
"""A job missed while the process was down still runs if it starts within this long."""


def schedule_per_site(scheduler: Any, job: Callable[[Site], object], trigger_of: Callable[[Site], CronTrigger],
                      sites: Sequence[Site], id_prefix: str, name: str) -> None:
    """Add `job(site)` for each site at `trigger_of(site)`, as `<id_prefix>-<site id>` (replacing a job
    of that id) named `name` with `{site}` filled in. A run missed while the process was down runs late
    within MISFIRE_GRACE_S, once however many were missed. The caller starts the scheduler."""
    for site in sites:
        scheduler.add_job(job, trigger_of(site), args=[site], id=f"{id_prefix}-{site.id}",
                          name=name.format(site=site.id), misfire_grace_time=MISFIRE_GRACE_S, coalesce=True,
                          replace_existing=True)
