"""Label matchers, as in Alertmanager: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.

Rule selectors, silences, inhibitions and routes all select alerts or devices with these. A regex is
anchored at both ends (Alertmanager semantics: `^(?:regex)$`, here RE2's full match). A missing
label matches as the empty string, so `room!=lobby` matches an alert without a room.

Regexes are RE2 (google-re2, the syntax and the linear-time guarantee of Go's regexp, which
Alertmanager uses): matching costs time proportional to the label value's length, whatever the
pattern, so a silence such as `alertname=~(.*){22}X` cannot pin the engine. What RE2 refuses
(backreferences `\\1`, lookaround `(?=`/`(?!`/`(?<=`/`(?<!`, possessive `a++`) is refused when the
matcher is made, with `MatcherError`. So are patterns longer than `MAX_REGEX_CHARS` and patterns that
compile to more than `MAX_REGEX_INSTRUCTIONS` RE2 instructions (large counted repetitions such as
`.{1000}`), which bound each matcher's memory and per-character cost.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import re2

OPS = ("=~", "!~", "!=", "=")
_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_REGEX_CHARS = 256
"""Longest regex a matcher accepts (the API takes a whole matcher of at most 300 characters)."""
MAX_REGEX_INSTRUCTIONS = 1_000
"""Largest compiled RE2 program a matcher accepts; `site=~park-.*` is 24, `(.*){22}X` 225, `.{1000}` 8,004.
Compiling costs about 0.4 µs an instruction: this bounds what a new silence costs the next tick."""
RE2_MAX_MEM_BYTES = 1 << 20
"""RE2's memory budget per regex (program and DFA cache; default 8 MiB): 2,000 regexes stay bounded."""
REMEMBERED_PROGRAMS = 4_096
"""Compiled regexes kept (by pattern) across silence re-reads: 100 silences of 20 matchers, and rules."""
REMEMBERED_VALUES = 1_024
"""Label values whose answer each compiled regex remembers: a fleet's alert names, sites, devices."""
RE2_SYNTAX_HINT = ("regexes use RE2 syntax, as Alertmanager's do: no backreferences (\\1), no lookahead or "
                   "lookbehind ((?=, (?!, (?<=, (?<!), no possessive quantifiers (a++); write the alternatives "
                   "out with | instead, e.g. device=~inv-(main|lab)")

log = logging.getLogger("facmon.rules.matchers")


class MatcherError(ValueError):
    """A matcher that cannot be parsed or compiled; the message shows the expected form."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors reach the caller as MatcherError, not RE2's stderr log
    options.max_mem = RE2_MAX_MEM_BYTES
    options.never_capture = True
    return options


_RE2_OPTIONS = _re2_options()


class _Refused(Exception):
    """Why RE2 will not take a pattern (`compile_regex` names the matcher)."""


class RegexProgram:
    """An RE2 regex matched against whole label values, and the answers it gave by label value (at
    most `REMEMBERED_VALUES`).

    Alerts carry the same few label values tick after tick, so after the first tick a silence's
    regex costs a dict lookup, not a match through google-re2's Python wrapper (~3 µs a call). The
    value is matched as UTF-8 bytes, which RE2 matches anyway: the wrapper's str path costs ~9 µs
    for the character offsets we never read."""

    __slots__ = ("_answers", "pattern", "regex")

    def __init__(self, pattern: str, regex: re2._Regexp) -> None:
        self.pattern = pattern
        self.regex = regex
        self._answers: dict[str, bool] = {}

    @property
    def instructions(self) -> int:
        return int(self.regex.programsize)

    def fullmatch(self, value: str) -> bool:
        hit = self._answers.get(value)
        if hit is None:
            # surrogatepass: a lone surrogate (valid JSON, invalid UTF-8) must not stop a tick.
            hit = self.regex.fullmatch(value.encode("utf-8", "surrogatepass")) is not None
            if len(self._answers) >= REMEMBERED_VALUES:
                self._answers.clear()
            self._answers[value] = hit
        return hit


@functools.lru_cache(maxsize=REMEMBERED_PROGRAMS)
def _program(value: str) -> RegexProgram:
    # Cached by pattern: the engine re-reads every silence whenever the API writes (an ack, a new
    # silence), and must not compile 2,000 regexes again nor forget their answers each time.
    # Refused patterns raise, and lru_cache keeps no exceptions.
    if len(value) > MAX_REGEX_CHARS:
        raise _Refused(f"the regex is {len(value)} characters; at most {MAX_REGEX_CHARS} are allowed: shorten it, "
                       "or split it into several matchers or silences")
    try:
        # Anchored by matching with RE2's ANCHOR_BOTH (`fullmatch`), the same as Alertmanager's
        # `^(?:re)$`: compiling `^(?:{value})$` would cost twice, to check `a)|(b` cannot escape.
        regex = re2.compile(value, _RE2_OPTIONS)
    except re2.error as err:
        reason = err.args[0].decode(errors="replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        raise _Refused(f"not a valid RE2 regex ({reason}); {RE2_SYNTAX_HINT}") from None
    if regex.programsize > MAX_REGEX_INSTRUCTIONS:
        raise _Refused(f"the regex compiles to {regex.programsize} RE2 instructions; at most "
                       f"{MAX_REGEX_INSTRUCTIONS} are allowed: use smaller counted repetitions ({{n,m}}) or a "
                       "simpler pattern")
    return RegexProgram(value, regex)


def compile_regex(text: str, value: str) -> RegexProgram:
    """The RE2 program of a matcher's regex `value` (shared by equal patterns); `text` names the
    matcher in errors.

    Raises `MatcherError` saying what to change: too long, not RE2 syntax, or too large a program."""
    try:
        return _program(value)
    except _Refused as refused:
        raise MatcherError(f"matcher {text}: {refused}") from None


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    # `object`, not re2's class: pydantic models (rules.model) hold matchers and need a type it knows.
    _regex: object | None = field(default=None, compare=False, repr=False)
    _unusable: str = field(default="", compare=False, repr=False)
    """Why a stored regex no longer compiles (see `from_dict`); such a matcher matches nothing."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise MatcherError(f"label name {self.name!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if self.op not in OPS:
            raise MatcherError(f"matcher operator {self.op!r} is not one of {', '.join(OPS)}")
        if self.op in ("=~", "!~") and self._regex is None and not self._unusable:
            object.__setattr__(self, "_regex", compile_regex(f"{self.name}{self.op}{self.value!r}", self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        if self._unusable:
            return False
        hit = self._regex.fullmatch(actual)  # type: ignore[union-attr]
        return hit if self.op == "=~" else not hit

    @property
    def program_size(self) -> int:
        """RE2 instructions of this matcher's regex (0 for an equality, or a stored regex RE2 refuses)."""
        return self._regex.regex.programsize if self._regex is not None else 0  # type: ignore[attr-defined]

    @property
    def is_equality(self) -> bool:
        return self.op == "="

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Matcher:
        """A matcher read back from storage (`to_dict`'s output). Raises `MatcherError` for a bad name
        or operator. A regex stored before matchers were RE2 that RE2 refuses (a lookahead, say) gives
        a matcher that matches nothing, with a warning: its silence then mutes nothing (alerts still
        notify) instead of one old row stopping every tick of the engine; expire it and make it again."""
        name, op, value = str(data["name"]), str(data["op"]), str(data["value"])
        try:
            return cls(name, op, value)
        except MatcherError as err:
            if op not in ("=~", "!~"):
                raise
            log.warning("stored matcher cannot be compiled; it matches nothing",
                        extra={"matcher": f"{name}{op}{value}"[:300], "error": str(err)[:300]})
            return cls(name, op, value, None, str(err))


def parse_matcher(text: str) -> Matcher:
    """`severity=critical`, `site=~park-.*`, `room!=lobby` → Matcher. Raises `MatcherError`."""
    for op in OPS:
        name, sep, value = text.partition(op)
        if sep and name.strip() and not any(o in name for o in ("=", "!", "~")):
            return Matcher(name.strip(), op, value.strip().strip('"'))
    raise MatcherError(f"{text!r} is not a matcher; write name=value, name!=value, name=~regex or name!~regex")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
