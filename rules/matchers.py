"""Label matchers, as in Alertmanager: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.

Rule selectors, silences, inhibitions and routes all select alerts or devices with these. A regex is
anchored at both ends (Alertmanager semantics). A missing label matches as the empty string, so
`room!=lobby` matches an alert without a room.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OPS = ("=~", "!~", "!=", "=")
_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message shows the expected form."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise MatcherError(f"label name {self.name!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if self.op not in OPS:
            raise MatcherError(f"matcher operator {self.op!r} is not one of {', '.join(OPS)}")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(rf"\A(?:{self.value})\Z"))
            except re.error as err:
                raise MatcherError(f"matcher {self.name}{self.op}{self.value!r}: bad regex: {err}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = self._regex.match(actual) is not None  # type: ignore[union-attr]
        return hit if self.op == "=~" else not hit

    @property
    def is_equality(self) -> bool:
        return self.op == "="

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Matcher:
        return cls(str(data["name"]), str(data["op"]), str(data["value"]))


def parse_matcher(text: str) -> Matcher:
    """`severity=critical`, `site=~park-.*`, `room!=lobby` → Matcher. Raises `MatcherError`."""
    for op in OPS:
        name, sep, value = text.partition(op)
        if sep and name.strip() and not any(o in name for o in ("=", "!", "~")):
            return Matcher(name.strip(), op, value.strip().strip('"'))
    raise MatcherError(f"{text!r} is not a matcher; write name=value, name!=value, name=~regex or name!~regex")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
