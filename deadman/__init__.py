"""The off-site dead man's switch (`facmon watchdog serve`): it hears the sites' signed heartbeats
and pages when a site goes quiet — the one outage a site cannot report itself (both ISPs down, the
grid out with the battery flat, the server dead).

    switch.py    DeadMansSwitch: pure; heartbeats and clock ticks in, pages out (one when a site goes
                 quiet, one when it returns, with how long it was dark)
    http.py      WatchdogServer: POST /heartbeat (core.heartbeat's signature and replay checks),
                 GET /healthz, GET /sites
Paging itself is the rules engine's notifiers and outbox, wired by facmon/commands/watchdog.py."""
