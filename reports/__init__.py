"""Monthly evidence for the facility manager: ISP availability with fault attribution, energy and
load-shedding, battery health (docs/reports.md).

    month.py      the report month in the site's time zone, as a grid of minutes and local days
    source.py     InfluxDB → plain values (every aggregation done by InfluxDB: minute and day buckets)
    isp.py        pure: each minute of each uplink classified, outages, availability against the SLA
    energy.py     pure: hours per source, load-shedding against the schedule, energy, fuel, cost
    battery.py    pure: capacity by coulomb counting, cycles, depth of discharge, voltage sag
    document.py   the report as data (summary, tables, charts, what could not be judged)
    render.py     a document → HTML, CSV and PDF

The pure modules take values and return values; only source.py talks to InfluxDB.
"""
