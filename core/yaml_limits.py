"""YAML with limits: every YAML document facmon reads (config, site, rule and credentials files, and
rule files posted to the API) is parsed here, and refused before it is built when it is too big,
too deep, or multiplied by aliases.

YAML's anchors and aliases (`&a [...]`, `*a`) let a few hundred bytes stand for billions of values
(the "billion laughs": nine anchors, each a list of nine aliases of the one before). PyYAML shares
aliased objects, so parsing alone is cheap; whatever walks the result afterwards (line maps,
validation, JSON) visits every expanded value and runs for minutes on gigabytes. An alias inside its
own anchor (`&a [*a]`) makes a cycle, and a list 5,000 levels deep exhausts Python's recursion: both
crash the walkers with RecursionError. So the composer here counts, for every node, how many values
it expands to and how deep it reaches once aliases are followed, and stops at the first bound
crossed, at a cost linear in the text.

    load_yaml(text, what=...)          -> the data, as yaml.safe_load would build it
    compose_yaml(text, what=...)       -> (node graph, data) for callers that map lines (core/site.py)

Errors:

    yaml.YAMLError                     PyYAML's own (syntax, undefined alias...), unchanged
    └── YamlLimitError                 a limit crossed: `limit` names which, `line` where, message what to do
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """Bounds on one document. The defaults are far above any file facmon ships or expects (the
    10,000-device site of docs/scaling.md is about 120,000 values) and far below what hurts."""

    max_chars: int = 8 * 1024 * 1024
    """Characters of text, checked before parsing."""
    max_depth: int = 100
    """Nesting levels of collections, aliases followed (Python's recursion limit is 1,000 frames)."""
    max_aliases: int = 1_000
    """Aliases (`*name`) in the document."""
    max_values: int = 1_000_000
    """Values (scalars and collections) once every alias is expanded."""


DEFAULT_LIMITS = YamlLimits()


class YamlLimitError(yaml.YAMLError):
    """The document crosses one of its `YamlLimits`. `limit` is the field name (`max_depth`...),
    `line` the 1-based line where it was found (None for the size), `problem` the message (so
    handlers written for PyYAML's MarkedYAMLError print it too)."""

    def __init__(self, message: str, *, limit: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.problem = message
        self.problem_mark = mark
        self.line = mark.line + 1 if mark is not None else None


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer keeps, per node, (values when expanded, height), and refuses the
    document when a bound is crossed. The composer is recursive, so the depth is checked on the way
    down, before Python's recursion limit can be reached."""

    def __init__(self, text: str, what: str, limits: YamlLimits) -> None:
        super().__init__(text)
        self._what = what
        self._limits = limits
        self._depth = 0
        self._aliases = 0
        self._open_anchors: set[str] = set()
        self._expanded: dict[int, tuple[int, int]] = {}
        """id(node) → (values it expands to, levels it spans), aliases followed."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
        self._depth += 1
        if self._depth > self._limits.max_depth:
            self._refuse("max_depth", event.start_mark,
                         f"the {self._what} nests deeper than {self._limits.max_depth} levels; flatten it")
        anchor = event.anchor if isinstance(event, yaml.CollectionStartEvent) else None
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        self._measure(node, event.start_mark)
        return node

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        self._aliases += 1
        if self._aliases > self._limits.max_aliases:
            self._refuse("max_aliases", event.start_mark,
                         f"the {self._what} uses more than {self._limits.max_aliases} aliases (*name); "
                         "write the values out instead")
        if event.anchor in self._open_anchors:
            self._refuse("recursive_alias", event.start_mark,
                         f"alias *{event.anchor} stands for a node that contains it (a recursive structure); "
                         f"a {self._what} must be a tree")

    def _measure(self, node: yaml.Node, mark: yaml.Mark) -> None:
        known = self._expanded.get(id(node))
        if known is None:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            measured = [self._expanded[id(child)] for child in children]
            known = (1 + sum(values for values, _ in measured), 1 + max((height for _, height in measured), default=0))
            self._expanded[id(node)] = known
        values, height = known
        if self._depth + height > self._limits.max_depth:
            self._refuse("max_depth", mark, f"the {self._what} nests deeper than {self._limits.max_depth} levels "
                                            "once its aliases are followed; flatten it")
        if values > self._limits.max_values:
            self._refuse("max_values", mark, f"the {self._what} expands to more than {self._limits.max_values:,} "
                                             "values once its aliases are followed; write it without "
                                             "aliases of aliases, or split it")

    def _refuse(self, limit: str, mark: yaml.Mark, message: str) -> None:
        raise YamlLimitError(message, limit=limit, mark=mark)


def _loader(text: str, what: str, limits: YamlLimits) -> _LimitedLoader:
    if len(text) > limits.max_chars:
        raise YamlLimitError(f"the {what} is {len(text):,} characters long, over the limit of "
                             f"{limits.max_chars:,}; split it", limit="max_chars", mark=None)
    return _LimitedLoader(text, what, limits)


def load_yaml(text: str, *, what: str, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """The single document of `text`, built as `yaml.safe_load` builds it (None when empty).

    `what` names the document in messages ("config file", "rule file"). Raises YamlLimitError when a
    limit is crossed, and PyYAML's yaml.YAMLError (syntax, undefined alias, several documents)."""
    loader = _loader(text, what, limits)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def compose_yaml(text: str, *, what: str, limits: YamlLimits = DEFAULT_LIMITS) -> tuple[yaml.Node | None, Any]:
    """The node graph of the single document of `text` (its marks give line numbers) and the data
    built from it, from one parse. Raises as `load_yaml`."""
    loader = _loader(text, what, limits)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
