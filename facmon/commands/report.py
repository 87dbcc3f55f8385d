"""`facmon report {isp,energy,battery} --site ID --month YYYY-MM [--out DIR] [--format html,csv,pdf]`:
the monthly evidence (docs/reports.md) from InfluxDB, as HTML with charts, CSV and PDF."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config import FacmonConfig
from core.influxql import InfluxError, influxql_client_for
from core.site import Site, SiteFileError, load_site
from reports.build import REPORTS, build_report
from reports.month import BadMonth
from reports.render import FORMATS, write_report

HELP = "write a monthly report (ISP availability, energy, battery health) as HTML, CSV and PDF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=sorted(REPORTS), help="which report")
    parser.add_argument("--site", required=True, help="site id (one of sites.files) or a site file's path")
    parser.add_argument("--month", required=True, help="YYYY-MM, in the site's time zone")
    parser.add_argument("--out", type=Path, default=Path("reports-out"), help="directory (default: ./reports-out)")
    parser.add_argument("--format", default=",".join(FORMATS),
                        help=f"comma-separated, of {', '.join(FORMATS)} (default: all)")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"--format: {', '.join(unknown) or '(empty)'} is not one of {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        site = _site(args.site, config)
    except SiteFileError as err:
        print(err, file=sys.stderr)
        return 2
    try:
        with influxql_client_for(config.influxdb) as client:
            doc = build_report(args.kind, client, site, args.month)
    except BadMonth as err:
        print(f"--month: {err}", file=sys.stderr)
        return 2
    except InfluxError as err:
        print(f"cannot read InfluxDB ({config.influxdb.url}): {err}", file=sys.stderr)
        return 1
    for path in write_report(doc, args.out, formats):
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
