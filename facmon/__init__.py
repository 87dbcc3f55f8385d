"""The `facmon` command: wiring only. Each subcommand lives in `facmon/commands/<name>.py` and wires
the stages (collector, rules, api, simulators, dashboards) together; the stages never import each other."""
