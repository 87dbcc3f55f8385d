"""Topic patterns of the mapping file: MQTT levels that are literal, `+` (any one level) or `{name}`
(any one level, captured). `zigbee2mqtt/{device}` matches `zigbee2mqtt/hall_pir` with
device=hall_pir; its subscription is `zigbee2mqtt/+`. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CAPTURE = re.compile(r"\A\{([a-z_][a-z0-9_]*)\}\Z")


class PatternError(ValueError):
    """A topic pattern that cannot be used; the message says what to change."""


@dataclass(frozen=True, slots=True)
class TopicPattern:
    text: str
    levels: tuple[str | None, ...]
    """Per level: the literal text, or None for a wildcard (`+` or a capture)."""
    captures: tuple[tuple[int, str], ...]
    """(level index, name) of each `{name}`."""

    @classmethod
    def parse(cls, text: str) -> TopicPattern:
        """Raises PatternError for `#`, empty levels, a capture used twice or a malformed `{...}`."""
        if not text or len(text) > 1024:
            raise PatternError("a topic pattern is 1 to 1024 characters")
        levels: list[str | None] = []
        captures: list[tuple[int, str]] = []
        for index, level in enumerate(text.split("/")):
            if level == "#" or "#" in level:
                raise PatternError(f"{text!r}: '#' is not allowed; name each level, with + or {{name}} for any one")
            if level == "+":
                levels.append(None)
                continue
            if "{" in level or "}" in level:
                match = _CAPTURE.match(level)
                if match is None:
                    raise PatternError(f"{text!r}: level {level!r} must be a whole capture like {{device}} "
                                       "(lower-case letters, digits, _)")
                if match.group(1) in {name for _, name in captures}:
                    raise PatternError(f"{text!r}: capture {{{match.group(1)}}} appears twice")
                captures.append((index, match.group(1)))
                levels.append(None)
                continue
            if "+" in level:
                raise PatternError(f"{text!r}: '+' must be a whole level")
            levels.append(level)
        return cls(text, tuple(levels), tuple(captures))

    @property
    def subscription(self) -> str:
        return "/".join("+" if level is None else level for level in self.levels)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for _, name in self.captures)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The captures of a topic already split on '/', or None when it does not match."""
        if len(parts) != len(self.levels):
            return None
        for level, part in zip(self.levels, parts, strict=True):
            if level is not None and level != part:
                return None
        return {name: parts[index] for index, name in self.captures}


def render(template: str, captures: dict[str, str]) -> str:
    """`template` with each `{name}` replaced by its capture. Raises KeyError for an unknown name."""
    return template.format_map(captures) if "{" in template else template
