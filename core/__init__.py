"""facmon's shared ground: the wire contract, the clock, the configuration model and logging.

Every stage (simulators, collector, rules, api, dashboards) imports this package; it imports none
of them, so the arrows of the data flow stay one-way.
"""
