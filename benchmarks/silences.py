"""Silence benchmark (issue 17, item 4): the rules engine's tick under the worst silences the API
accepts. Prints figures; not a test.

The path users run: `Engine.tick()` (what APScheduler calls every `rules.evaluation_interval_s`) with
its `AlertStore` on disk, the shipped rule pack, and a park fleet (the shipped park site, copied
`--sites` times) in an outage: grid down on every inverter, every uplink down, every occupancy sensor
silent. Silences and acks are written through a second `AlertStore` on the same file, as the API
process does, so the engine re-reads them the way it does in production.

Measured on one engine, one after the other:
  reference   ticks with 0 silences
  cold        the first tick after all 100 silences were created at once (the engine compiles
              2,000 regexes it has never seen and tries each on the alerts' label values)
  steady      ticks with the same 100 silences
  re-read     a tick after the API acknowledged an alert (the engine re-reads all 100 silences)
  one new     the first tick after one more silence of the same shape was created
  restart     a new engine on the same store, in a process that has compiled nothing: its
              construction and first connection (where it reads the silences and routes every
              alert), then its first tick
The API process compiles each regex too (to refuse bad ones); the engine is a separate process, so
before the cold and restart phases the benchmark empties this process's caches of compiled regexes
and answers (`rules.matchers._program`, `rules.silences._answers`).

The 100 silences have the worst shape allowed: 20 matchers each (the API's limit), of which
`--regexes` (default `rules.silences.MAX_SILENCE_REGEXES`) are distinct regexes sharing the silence's
`MAX_SILENCE_REGEX_INSTRUCTIONS`, headed by the issue's `(.*){22}` where it fits, and the rest
inequalities that match every alert; the last regex matches nothing, so every silence is evaluated in
full for every alert and mutes nothing. More, smaller regexes cost more than fewer large ones, so the
most regexes allowed is the worst shape. Target: <= 50 ms per tick.

    .venv/bin/python benchmarks/silences.py [--sites 1] [--ticks 50] [--regexes 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import FakeClock, SystemClock
from core.contract import DeviceKey, Kind, Reading
from core.site import Site, load_site
from rules import matchers as matchers_module
from rules import silences as silences_module
from rules.engine import Engine
from rules.matchers import MAX_REGEX_CHARS, MAX_REGEX_INSTRUCTIONS, MatcherError, compile_regex, parse_matcher
from rules.model import load_rule_files
from rules.route import Route
from rules.silences import MAX_SILENCE_REGEX_INSTRUCTIONS, MAX_SILENCE_REGEXES
from rules.store import AlertStore
from tests.unit.rules.rules_harness import PACK, PARK, inverter, local, uplink

CLOCK = SystemClock()
SILENCES = 100
MATCHERS_PER_SILENCE = 20  # api/routes/silences.py: SilenceIn.matchers max_length
LABELS = ("alertname", "device", "site", "severity", "team")
TARGET_MS = 50.0


def fleet(sites: int) -> dict[str, Site]:
    park = load_site(PARK)
    if sites == 1:
        return {park.id: park}
    return {f"park-{i:02d}": park.model_copy(update={"id": f"park-{i:02d}"}) for i in range(sites)}


def outage(engine: Engine, clock: FakeClock, sites: dict[str, Site], seconds: int) -> None:
    """Grid down and uplinks down everywhere, occupancy sensors silent, for `seconds` of fake time."""
    seq = 0
    for _ in range(seconds // 5):
        clock.advance(5)
        for site in sites.values():
            for inv in site.inverters:
                seq += 1
                engine.handle(Reading(DeviceKey(site.id, Kind.INVERTER, inv.id), int(clock.now() * 1000), seq,
                                      inverter(soc=60.0, grid_ok=False)))
            for up in site.uplinks:
                seq += 1
                engine.handle(Reading(DeviceKey(site.id, Kind.UPLINK, up.id), int(clock.now() * 1000), seq,
                                      uplink(up.isp, up=False)))
        engine.tick()


def _fits(pattern: str, max_instructions: int) -> bool:
    try:
        return compile_regex("benchmark", pattern).regex.programsize <= max_instructions
    except MatcherError:
        return False


def worst_pattern(index: int, head: str, max_instructions: int = MAX_REGEX_INSTRUCTIONS) -> str:
    """`head` (which decides what matches) then alternatives unique to `index` that never match a
    label value, grown until the next one would pass MAX_REGEX_CHARS or `max_instructions`."""
    pattern = f"{head}|~{index:04d}"
    width = 1
    while True:
        candidate = f"{pattern}|~{index:04d}(?:[a-z]{{{width}}}|.{{1,{width}}}~)"
        if not _fits(candidate, max_instructions):
            if width == 1:
                break
            width = 1  # the wide piece no longer fits: add narrow ones until nothing fits
            if not _fits(f"{pattern}|~{index:04d}", max_instructions):
                return pattern
            pattern = f"{pattern}|~{index:04d}"
            continue
        pattern, width = candidate, width * 2
    while len(pattern) < MAX_REGEX_CHARS and _fits(pattern + "~", max_instructions):
        pattern += "~"
    return pattern


def worst_silences(count: int = SILENCES, regexes: int = MAX_SILENCE_REGEXES) -> list[list[str]]:
    """Each silence spends its whole regex budget (MAX_SILENCE_REGEX_INSTRUCTIONS) on `regexes` regexes
    (headed by the issue's `(.*){22}` while it fits, else by `.*`), and fills its 20 matchers with
    inequalities that match every alert (free to compile, still evaluated)."""
    share = MAX_SILENCE_REGEX_INSTRUCTIONS // regexes
    head = "(.*){22}" if share >= 250 else ".*"
    silences = []
    for s in range(count):
        matchers = []
        for m in range(MATCHERS_PER_SILENCE - 1):
            label = LABELS[m % len(LABELS)]
            if m < regexes - 1:
                matchers.append(f"{label}=~{worst_pattern(s * MATCHERS_PER_SILENCE + m, head, share)}")
            else:
                matchers.append(f"{label}!=never-{s}-{m}")
        matchers.append(f"alertname=~{worst_pattern(s * MATCHERS_PER_SILENCE + 19, head + 'X', share)}")
        silences.append(matchers)
    return silences


def forget_compiled() -> None:
    """Empty the caches a separate engine process would not share with the API (see the docstring)."""
    matchers_module._program.cache_clear()
    silences_module._answers.cache_clear()


def timed_tick(engine: Engine, clock: FakeClock) -> float:
    clock.advance(1)
    start = CLOCK.monotonic()
    engine.tick()
    return (CLOCK.monotonic() - start) * 1000


def describe(name: str, ms: list[float], reference_ms: float | None = None) -> str:
    ratio = f"   ({statistics.median(ms) / reference_ms:5.1f}x the reference)" if reference_ms else ""
    return (f"{name:<38} median {statistics.median(ms):7.2f} ms   max {max(ms):7.2f} ms   over {len(ms)} tick(s)"
            f"{ratio}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1, help="copies of the shipped park site (default 1)")
    parser.add_argument("--ticks", type=int, default=50, help="ticks measured per steady phase")
    parser.add_argument("--regexes", type=int, default=MAX_SILENCE_REGEXES,
                        help="regex matchers per silence, sharing its instruction budget (default: the most "
                             "allowed, the worst shape measured: more regexes cost more than larger ones)")
    args = parser.parse_args()
    sites = fleet(args.sites)
    pack = load_rule_files([PACK])
    routes = [Route("oncall", group_wait_s=0, group_interval_s=60, repeat_interval_s=3600)]
    *texts, extra_texts = worst_silences(SILENCES + 1, args.regexes)  # all made first: making them compiles many
    matchers = [[parse_matcher(t) for t in silence] for silence in texts]
    programs = [m._regex for silence in matchers for m in silence if m._regex is not None]
    with tempfile.TemporaryDirectory() as tmp_name:
        path = Path(tmp_name) / "alerts.sqlite"
        clock = FakeClock(local("2026-01-05 12:00"))
        store = AlertStore(path, clock)
        engine = Engine(pack, sites, store, routes, clock, {"oncall": ["oncall:hook"]})
        engine.source_connected(True)
        outage(engine, clock, sites, 300)
        alerts = [a for a in engine.alerts() if a.state.value in ("pending", "firing")]
        api = AlertStore(path, clock)  # the API process's own connection
        reference = [timed_tick(engine, clock) for _ in range(args.ticks)]
        for silence in matchers:
            api.create_silence(silence, clock.now(), clock.now() + 86_400, "benchmark", "worst shape")
        forget_compiled()
        cold = [timed_tick(engine, clock)]
        steady = [timed_tick(engine, clock) for _ in range(args.ticks)]
        api.acknowledge(alerts[0].fingerprint, "benchmark")
        reread = [timed_tick(engine, clock)]
        extra = [parse_matcher(t) for t in extra_texts]
        api.create_silence(extra, clock.now(), clock.now() + 86_400, "benchmark", "one more")
        one_new = [timed_tick(engine, clock)]
        silenced = sum(1 for a in engine.alerts() if any(m.startswith("silence:") for m in a.muted_by))
        forget_compiled()
        start = CLOCK.monotonic()
        restarted = Engine(pack, sites, AlertStore(path, clock), routes, clock, {"oncall": ["oncall:hook"]})
        restarted.source_connected(True)  # as its MQTT subscription does: the first routing of every alert
        startup_ms = (CLOCK.monotonic() - start) * 1000
        restart = [timed_tick(restarted, clock)]
    ref = statistics.median(reference)
    devices = sum(len(s.inverters) + len(s.uplinks) + len(s.occupancy_sensors) for s in sites.values())
    rules = ", ".join(sorted({a.rule for a in alerts}))
    print(f"fleet: {len(sites)} site(s), {devices} devices, {len(alerts)} active alerts ({rules})")
    lengths = [len(p.pattern) for p in programs]
    sizes = [p.instructions for p in programs]
    per_silence = max(sum(m.program_size for m in silence) for silence in matchers)
    print(f"silences: {SILENCES} x {MATCHERS_PER_SILENCE} matchers, {len(programs) // SILENCES} of them regexes, "
          f"{len({p.pattern for p in programs})} distinct patterns, {min(lengths)}-{max(lengths)} characters "
          f"(limit {MAX_REGEX_CHARS}), {min(sizes)}-{max(sizes)} RE2 instructions (limit {MAX_REGEX_INSTRUCTIONS}), "
          f"up to {per_silence} a silence (limit {MAX_SILENCE_REGEX_INSTRUCTIONS}); alerts silenced: {silenced}")
    print(describe("reference: 0 silences", reference))
    print(describe("cold: first tick after 100 silences", cold, ref))
    print(describe("steady: 100 silences", steady, ref))
    print(describe("re-read: tick after an ack via the API", reread, ref))
    print(describe("one new: tick after a 101st silence", one_new, ref))
    print(f"restart: new engine + first connection (compiles, first answers) {startup_ms:7.2f} ms, not in a tick")
    print(describe("restart: first tick of the new engine", restart, ref))
    usual = max(steady + reread + one_new + restart)
    print(f"worst tick with 100 silences, except the cold one: {usual:.2f} ms; cold: {cold[0]:.2f} ms "
          f"(target <= {TARGET_MS:.0f} ms per tick: {'met' if max(usual, cold[0]) <= TARGET_MS else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
