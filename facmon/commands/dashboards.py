"""`facmon dashboards build|check|push`: Grafana dashboards as code.

    facmon dashboards build [--out DIR] [--site FILE]...   write the dashboards' JSON
    facmon dashboards check [--out DIR] [--site FILE]...   fail if DIR differs from a fresh build
    facmon dashboards push --url URL [--token TOKEN]       data source + folder + dashboards, via the API
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config import FacmonConfig
from core.settings.base import read_secret
from core.site import SiteFileError, load_site
from dashboards.build import DashboardOptions, build_dashboards, dashboard_json, render, write_dashboards
from dashboards.push import GrafanaPusher, InfluxSource, PushError
from dashboards.validate import InvalidDashboard, check

HELP = "build Grafana dashboards to JSON, check them, or push them to a Grafana"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("build", "write every dashboard as JSON (validated first)"),
                       ("check", "exit 1 if the JSON in --out differs from a fresh build")):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("--out", type=Path, default=None, help="directory (default: dashboards.out_dir)")
        sub.add_argument("--site", type=Path, action="append", default=None,
                         help="site description (repeatable) for room capacities (default: sites.files)")
        sub.add_argument("--timezone", default=None,
                         help="IANA zone the dashboards open in (default: dashboards.timezone)")
    push = actions.add_parser("push", help="create or update the data source, folder and dashboards in a Grafana",
                              description="Idempotent: unchanged dashboards are not saved again.")
    push.add_argument("--url", default=None, help="Grafana base URL (default: dashboards.grafana_url)")
    push.add_argument("--token", default=None,
                      help="service-account token (default: FACMON_DASHBOARDS__GRAFANA_TOKEN or "
                           "dashboards.grafana_token_file; prefer those: a flag shows in `ps`)")
    push.add_argument("--site", type=Path, action="append", default=None, help="site description (repeatable)")


def _options(args: argparse.Namespace, config: FacmonConfig) -> DashboardOptions:
    settings = config.dashboards
    paths = args.site if args.site is not None else list(config.sites.files)
    sites = [load_site(p) for p in paths]
    return DashboardOptions.from_sites(sites, getattr(args, "timezone", None) or settings.timezone)


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    try:
        options = _options(args, config)
        if args.action == "push":
            return _push(args, config, options)
        out = args.out or config.dashboards.out_dir
        built = build_dashboards(options)
        for dashboard in built:
            check(dashboard_json(dashboard))
        if args.action == "build":
            for path in write_dashboards(options, out):
                print(path)
            return 0
        stale = [d.file_name for d in built if not (out / d.file_name).is_file()
                 or (out / d.file_name).read_text(encoding="utf-8") != render(d)]
        if stale:
            print(f"out of date in {out}: {', '.join(stale)} — run `facmon dashboards build`", file=sys.stderr)
            return 1
        return 0
    except (SiteFileError, InvalidDashboard, PushError, ValueError) as err:
        print(f"facmon dashboards {args.action}: {err}", file=sys.stderr)
        return 1


def _push(args: argparse.Namespace, config: FacmonConfig, options: DashboardOptions) -> int:
    settings = config.dashboards
    url = args.url or settings.grafana_url
    if not url:
        raise ValueError("no Grafana URL: pass --url or set dashboards.grafana_url")
    token = args.token or read_secret(settings.grafana_token, settings.grafana_token_file, "the Grafana token") or ""
    influx = config.influxdb
    source = InfluxSource(
        url=settings.datasource_url or influx.url, database=influx.database,
        token=read_secret(influx.token, influx.token_file, "the InfluxDB token") if influx.api == "v2" else None,
        username=influx.username,
        password=read_secret(influx.password, influx.password_file, "the InfluxDB password"))
    dashboards = [dashboard_json(d) for d in build_dashboards(options)]
    for dashboard in dashboards:
        check(dashboard)
    pusher = GrafanaPusher.connect(url.rstrip("/"), token, settings.timeout_s, settings.verify_tls)
    for item in pusher.push_all(source, settings.folder_uid, settings.folder_title, dashboards):
        version = f" (version {item.version})" if item.version is not None else ""
        print(f"{item.kind} {item.uid}: {item.outcome}{version}")
    return 0
