"""Silences: label matchers plus a time window, created by people (or a maintenance schedule).

A silence mutes notifications of every alert whose labels match all its matchers while
`starts_at <= now < ends_at`; the alert itself keeps its state (and is listed as silenced).
Expiring a silence sets `ends_at` to the expiry time, so history shows when it really ended.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rules.matchers import Matcher, matches_all


class SilenceError(ValueError):
    """A silence that cannot be created as asked (no matchers, ends before it starts, ...)."""


MAX_SILENCE_REGEXES = 3
"""Most regex matchers (`=~`, `!~`) one new silence may have; the rest of its matchers can be any
number of equalities. A silence people write rarely needs more than `alertname=~`, `device=~` and
`site=~`."""
MAX_SILENCE_REGEX_INSTRUCTIONS = 300
"""Largest sum of RE2 program sizes over one new silence's regex matchers. Silences people write are far
below it: `alertname=~` ten alert names is 104, `device=~inv-(main|lab)` 15, the issue's `(.*){22}X`
202. The engine compiles a new silence's regexes and tries them on every alert's labels on its next
tick: 100 silences of 20 regexes of `rules.matchers.MAX_REGEX_INSTRUCTIONS` each made that tick
726 ms; the worst shape within both limits takes 39-44 ms (benchmarks/README.md, "Silences")."""


def check_regex_budget(matchers: tuple[Matcher, ...]) -> None:
    """Raise `SilenceError` if a new silence has more than MAX_SILENCE_REGEXES regex matchers or its
    regexes compile to more than MAX_SILENCE_REGEX_INSTRUCTIONS together."""
    regexes = [m for m in matchers if m.op in ("=~", "!~")]
    if len(regexes) > MAX_SILENCE_REGEXES:
        raise SilenceError(f"the silence has {len(regexes)} regex matchers; at most {MAX_SILENCE_REGEXES} are "
                           "allowed: write the others as name=value or name!=value, or use several silences")
    total = sum(m.program_size for m in regexes)
    if total > MAX_SILENCE_REGEX_INSTRUCTIONS:
        raise SilenceError(f"the silence's regexes compile to {total} RE2 instructions together; at most "
                           f"{MAX_SILENCE_REGEX_INSTRUCTIONS} are allowed: use fewer or simpler regex matchers "
                           "(an equality matcher costs nothing), or several silences")


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired_by: str | None = None

    def __post_init__(self) -> None:
        if not self.matchers:
            raise SilenceError("a silence needs at least one matcher (e.g. site=park-1); "
                               "it would otherwise mute every alert")
        if self.ends_at <= self.starts_at:
            raise SilenceError(f"silence ends ({self.ends_at}) at or before it starts ({self.starts_at})")
        if not self.created_by.strip():
            raise SilenceError("a silence needs its author (created_by)")

    def is_active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        """`pending` (starts later), `active` or `expired`, as Alertmanager names them."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.is_active(now) and matches_all(self.matchers, labels)


LabelSet = tuple[tuple[str, str], ...]
REMEMBERED_LABEL_SETS = 20_000
"""Alert label sets whose matching silences a muter remembers (a large fleet's alerts, with room)."""
REMEMBERED_ANSWERS_PER_SILENCE = 4_096
"""Alert label sets whose answer is remembered per silence across re-reads of the store."""
REMEMBERED_MATCHER_GROUPS = 1_024
"""Silences (by their matchers) whose answers are remembered across re-reads (10x the 100 of
benchmarks/silences.py). Past these bounds a cache is emptied and refilled: slower, never wrong."""


@functools.lru_cache(maxsize=REMEMBERED_MATCHER_GROUPS)
def _answers(matchers: tuple[Matcher, ...]) -> dict[LabelSet, bool]:
    # Whether a silence's matchers match a label set depends on nothing else, and the engine builds
    # a new SilenceMuter, with new Silence objects, every time the API writes (an ack, a silence):
    # answers are kept by the matchers' content, so a re-read costs a lookup per silence and alert
    # instead of 20 matchers each (measured in benchmarks/silences.py).
    return {}


class SilenceMuter:
    """The silences in force, as a muter: `mutes(labels, now)` returns the id of the first silence
    (in the given order) that mutes these labels, or None.

    Which silences' matchers match a label set does not change with time, and the engine asks again
    for the same alerts every tick: the answer is remembered per label set (see the bounds above),
    and only `is_active(now)` is checked each time."""

    def __init__(self, silences: Iterable[Silence]) -> None:
        self._silences = tuple((silence, _answers(silence.matchers)) for silence in silences)
        self._matching: dict[LabelSet, tuple[Silence, ...]] = {}

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        key = tuple(sorted(labels.items()))
        matching = self._matching.get(key)
        if matching is None:
            matching = tuple(silence for silence, answers in self._silences
                             if _remembered(answers, key, silence, labels))
            if len(self._matching) >= REMEMBERED_LABEL_SETS:
                self._matching.clear()
            self._matching[key] = matching
        for silence in matching:
            if silence.is_active(now):
                return silence.id
        return None


def _remembered(answers: dict[LabelSet, bool], key: LabelSet, silence: Silence, labels: Mapping[str, str]) -> bool:
    hit = answers.get(key)
    if hit is None:
        hit = matches_all(silence.matchers, labels)
        if len(answers) >= REMEMBERED_ANSWERS_PER_SILENCE:
            answers.clear()
        answers[key] = hit
    return hit
