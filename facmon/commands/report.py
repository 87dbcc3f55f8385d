"""`facmon report`: the monthly evidence (docs/reports.md) from InfluxDB.

    facmon report {isp,energy,battery} --site ID --month YYYY-MM [--out DIR] [--format html,csv,pdf]
    facmon report mail --site ID [--month YYYY-MM]      the monthly e-mail now (default: last month)
    facmon report store --site ID --month YYYY-MM       the month's figures into InfluxDB (the Monthly dashboard)
    facmon report serve                                 the monthly e-mail of every site, on the 1st, and
                                                        every day the figures of the month so far
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from core.clock import SystemClock
from core.config import FacmonConfig
from core.influx_write import InfluxWriteError, line_writer_for
from core.influxql import InfluxError, InfluxQLClient, influxql_client_for
from core.settings.base import read_secret
from core.site import Site, SiteFileError, load_site
from reports.build import REPORTS, build_report
from reports.mail import MailError, MonthlyMail, SmtpSender, monthly_trigger, previous_month, schedule_monthly
from reports.month import BadMonth
from reports.render import FORMATS, write_report
from reports.store import MonthStore, daily_store_trigger, schedule_daily_stores

HELP = "monthly reports (ISP availability, energy, battery health) as HTML, CSV and PDF, and their e-mail"
ACTIONS = (*sorted(REPORTS), "mail", "store", "serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="a report to write, `mail` to send the monthly e-mail now, "
                                                        "`store` to keep a month's figures in InfluxDB, `serve` to "
                                                        "send the e-mail on the 1st and store every day")
    parser.add_argument("--site", help="site id (one of sites.files) or a site file's path")
    parser.add_argument("--month", help="YYYY-MM in the site's time zone (mail: default the month before this one)")
    parser.add_argument("--out", type=Path, default=None, help="directory (default: reports.out_dir)")
    parser.add_argument("--format", default=",".join(FORMATS),
                        help=f"comma-separated, of {', '.join(FORMATS)} (default: all)")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    if args.action == "serve":
        return _serve(config)
    if args.site is None or (args.month is None and args.action != "mail"):
        print(f"facmon report {args.action}: give --site" + ("" if args.action == "mail" else " and --month"),
              file=sys.stderr)
        return 2
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"--format: {', '.join(unknown) or '(empty)'} is not one of {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        site = _site(args.site, config)
        with influxql_client_for(config.influxdb) as client:
            if args.action == "mail":
                return _mail_now(client, site, args.month, config)
            if args.action == "store":
                return _store(client, site, args.month, config)
            doc = build_report(args.action, client, site, args.month)
    except SiteFileError as err:
        print(err, file=sys.stderr)
        return 2
    except BadMonth as err:
        print(f"--month: {err}", file=sys.stderr)
        return 2
    except InfluxError as err:
        print(f"cannot read InfluxDB ({config.influxdb.url}): {err}", file=sys.stderr)
        return 1
    except InfluxWriteError as err:
        print(f"cannot write to InfluxDB ({config.influxdb.url}): {err}; run it again to store the month whole",
              file=sys.stderr)
        return 1
    for path in write_report(doc, args.out or config.reports.out_dir, formats):
        print(path)
    for note in doc.not_judged:
        print(f"not judged: {note}", file=sys.stderr)
    return 0


def _site(name: str, config: FacmonConfig) -> Site:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_site(path)
    for file in config.sites.files:
        site = load_site(file)
        if site.id == name:
            return site
    raise SiteFileError(f"--site: no site {name!r} in sites.files ({', '.join(map(str, config.sites.files)) or 'none'}"
                        f"); give a site id from them or a site file's path")


def _monthly_mail(client: InfluxQLClient, config: FacmonConfig) -> MonthlyMail | None:
    email = config.reports.email
    if email is None:
        print("the monthly e-mail needs reports.email (host, to, ...): see docs/reports.md", file=sys.stderr)
        return None
    password = read_secret(email.password, email.password_file, "reports.email.password")
    sender = SmtpSender(email.host, email.port, starttls=email.starttls, username=email.username, password=password)
    return MonthlyMail(lambda kind, site, month: build_report(kind, client, site, month), sender, email.from_addr,
                       email.to, config.reports.out_dir, SystemClock())


def _mail_now(client: InfluxQLClient, site: Site, month: str | None, config: FacmonConfig) -> int:
    mail = _monthly_mail(client, config)
    if mail is None:
        return 2
    month = month or previous_month(SystemClock().now(), site.tz)
    try:
        message = mail.send_month(site, month)
    except MailError as err:
        print(f"the monthly e-mail was not sent: {err}", file=sys.stderr)
        return 1
    print(f"sent {message['Subject']!r} to {message['To']}")
    return 0


def _store(client: InfluxQLClient, site: Site, month: str, config: FacmonConfig) -> int:
    writer = line_writer_for(config.influxdb)
    try:
        stored, count = MonthStore(client, writer, SystemClock()).store(site, month)
    finally:
        writer.close()
    through = "" if stored.complete else f" through {stored.days[-1].isoformat()}"
    print(f"{site.id} {stored}{through}: {count} points stored in InfluxDB ({config.influxdb.database})")
    return 0


def _serve(config: FacmonConfig) -> int:
    from apscheduler.schedulers.blocking import BlockingScheduler

    try:
        sites = [load_site(file) for file in config.sites.files]
    except SiteFileError as err:
        print(err, file=sys.stderr)
        return 2
    if not sites:
        print("facmon report serve: sites.files lists no site to report on", file=sys.stderr)
        return 2
    writer = line_writer_for(config.influxdb)
    with influxql_client_for(config.influxdb) as client:
        # Without reports.email the figures are still stored for the dashboard; the e-mail is what is missing.
        mail = _monthly_mail(client, config) if config.reports.email is not None else None
        scheduler = BlockingScheduler()
        if mail is not None:
            schedule_monthly(scheduler, mail, sites, config.reports.mail_hour)
        else:
            print("no reports.email: no monthly e-mail, only the daily store of the figures", file=sys.stderr)
        schedule_daily_stores(scheduler, MonthStore(client, writer, SystemClock()), sites)
        for site in sites:
            mail_at = monthly_trigger(site, config.reports.mail_hour).get_next_fire_time(None, _now(site))
            print(f"{site.id}: next store of the month's figures "
                  f"{daily_store_trigger(site).get_next_fire_time(None, _now(site))}"
                  + (f", next monthly e-mail {mail_at}" if mail is not None else ""))
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            scheduler.shutdown(wait=False)
        finally:
            writer.close()
    return 0


def _now(site: Site) -> datetime:
    return datetime.fromtimestamp(SystemClock().now(), site.tz)
