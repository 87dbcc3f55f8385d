"""The monthly e-mail: on the 1st of each month at `reports.mail_hour` in each site's time zone, the
three reports of the month just ended, one e-mail per site with the PDFs attached and each report's
summary and "could not judge" notes in the text.

    mail = MonthlyMail(build, send, sender, recipients, out_dir, clock)
    mail.send_month(site, "2026-11")            # now (`facmon report mail`)
    schedule_monthly(scheduler, mail, sites, 9)  # APScheduler 3.x cron jobs (`facmon report serve`)

Exceptions: `MailError(retryable)` when the SMTP server refuses or cannot be reached; a report that
cannot be built (InfluxDB down) raises core.influxql's errors, and nothing is sent half-built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from core.clock import Clock
from core.site import Site
from core.smtp import SmtpFailure, send_mail
from reports.document import ReportDocument
from reports.render import write_report
from reports.schedule import schedule_per_site

log = logging.getLogger("facmon.reports")
KINDS = ("isp", "energy", "battery")

BuildReport = Callable[[str, Site, str], ReportDocument]
"""(kind, site, "YYYY-MM") → the report."""


class MailError(Exception):
    """The e-mail could not be delivered; `retryable` when a later attempt may succeed (4xx, no answer)."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def previous_month(epoch_s: float, tz: ZoneInfo) -> str:
    """'YYYY-MM' of the month before the one holding `epoch_s` in `tz`."""
    first = datetime.fromtimestamp(epoch_s, tz).date().replace(day=1)
    last_month = first - timedelta(days=1)
    return f"{last_month.year:04d}-{last_month.month:02d}"


def monthly_message(site: Site, month: str, docs: Sequence[ReportDocument], pdfs: Sequence[Path], sender: str,
                    recipients: Sequence[str]) -> EmailMessage:
    """The e-mail of `site`'s month: each report's summary and notes as text, its PDF attached."""
    message = EmailMessage()
    message["Subject"] = f"{site.name}: monthly reports {month}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<monthly-{site.id}-{month}@facmon>"  # a resend is recognisably the same mail
    lines = [f"{site.name} ({site.id}), {month}, times in {site.timezone}.", ""]
    for doc in docs:
        lines += [doc.title, *(f"  {label}: {value}" for label, value in doc.summary)]
        lines += [f"  not judged: {note}" for note in doc.not_judged]
        lines.append("")
    lines.append("The PDFs attached hold the charts and tables; the HTML and CSV come from `facmon report`.")
    message.set_content("\n".join(lines))
    for pdf in pdfs:
        message.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename=pdf.name)
    return message


class SmtpSender:
    """Sends one message through an SMTP server (STARTTLS and login when configured)."""

    def __init__(self, host: str, port: int, *, starttls: bool = False, username: str | None = None,
                 password: str | None = None, timeout_s: float = 30.0) -> None:
        self.host, self.port = host, port
        self.starttls, self.username, self.password = starttls, username, password
        self.timeout_s = timeout_s

    def __call__(self, message: EmailMessage) -> None:
        try:
            send_mail(message, self.host, self.port, self.timeout_s, starttls=self.starttls,
                      username=self.username, password=self.password)
        except SmtpFailure as err:
            raise MailError(str(err), err.retryable) from None


class MonthlyMail:
    """Builds, renders and sends a site's monthly reports. `send` delivers one message (SmtpSender)."""

    def __init__(self, build: BuildReport, send: Callable[[EmailMessage], None], sender: str,
                 recipients: Sequence[str], out_dir: Path, clock: Clock) -> None:
        self.build, self.send = build, send
        self.sender, self.recipients = sender, tuple(recipients)
        self.out_dir, self.clock = out_dir, clock

    def send_month(self, site: Site, month: str) -> EmailMessage:
        """Build the three reports of `month`, write their PDFs under out_dir, send one e-mail. Raises
        MailError, BadMonth, core.influxql.InfluxError (then nothing is sent)."""
        docs = [self.build(kind, site, month) for kind in KINDS]
        pdfs = [path for doc in docs for path in write_report(doc, self.out_dir / site.id, ("pdf",))]
        message = monthly_message(site, month, docs, pdfs, self.sender, self.recipients)
        self.send(message)
        log.info("event=monthly_mail_sent site=%s month=%s to=%d", site.id, month, len(self.recipients))
        return message

    def send_previous_month(self, site: Site) -> None:
        """The cron job: the month that ended before now, in the site's zone."""
        self.send_month(site, previous_month(self.clock.now(), site.tz))


def monthly_trigger(site: Site, hour: int) -> CronTrigger:
    """The 1st of every month at `hour`:00 in the site's time zone."""
    return CronTrigger(day=1, hour=hour, minute=0, timezone=site.tz)


def schedule_monthly(scheduler: Any, mail: MonthlyMail, sites: Sequence[Site], hour: int) -> None:
    """One cron job per site on an APScheduler 3.x scheduler (started by the caller)."""
    schedule_per_site(scheduler, mail.send_previous_month, lambda site: monthly_trigger(site, hour), sites,
                      "monthly-mail", "monthly reports of {site}")
