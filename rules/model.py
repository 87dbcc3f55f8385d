"""Rules as YAML: the model, its validation, and loading with `file:line: what is wrong` errors.

A rule file (see rules/packs/park.yaml and docs/rules.md):

    rules:
      - name: GridOutage                       # alertname; [A-Za-z][A-Za-z0-9_]*
        kind: inverter                         # inverter | uplink | occupancy | generator | plug
        match: ["site=park", "device=~inv-.*"] # label matchers on site, device, room, isp (optional)
        condition:                             # exactly one of the condition types below
          threshold: {metric: grid_ok, op: "==", value: false}
        for: 10s                               # hold before firing (pending meanwhile)
        keep_firing_for: 60s                   # hold before resolving
        active_when: always                    # or open | closed | load_shedding | no_load_shedding (site time)
        labels: {severity: critical}
        context:                               # label overrides from the site's situation
          load_shedding: {scheduled: {severity: warning}, unscheduled: {severity: critical}}
          load_shedding_grace: 10m             # this close to a published window still counts as scheduled
          occupancy: {occupied: {severity: critical}, empty: {severity: info, digest: "true"}}
        annotations: {summary: "Grid down at {site} ({device})"}
    inhibit_rules:
      - {source: ["alertname=SitePowerLoss"], target: ["alertname=~UplinkDown|DeviceSilent"], equal: [site]}

Condition types:
    threshold   metric op value [clear]           hysteresis: once firing, clears only past `clear`
                value_from: room_capacity          compare with the site's capacity for the room
    absence     after_s [offline] [scope]         no reading for after_s (per device or whole site), or
                                                  status `offline` (LWT) when offline: true
    aggregate   metric func window_s|window_readings op value [clear] [q]
                func: mean | min | max | percentile | rate | loss_ratio   (numpy over the window)
    composite   all: [terms] | any: [terms]       per site, over each matching device's latest reading;
                term: kind, metric, op, value, [quantifier all|any], [role primary|backup], [match],
                [absent_counts]  (a silent/offline device counts as meeting the term)
    runout      metric window_s [within_s] [before_grid_return] [min_points]
                least-squares time-to-empty of a falling metric (battery SoC)

`load_rule_files(paths)` returns a `RulePack`; `check_rule_files(paths)` returns the problems as
lines (used by `facmon rules check`). Raises `RuleFileError` whose message has one line per problem.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, field_validator, model_validator

from core.contract import LABELS, METRICS_BY_NAME, Kind, MetricType
from core.durations import parse_optional_duration
from core.site import SiteFileError, describe_validation_error, line_of, read_yaml_with_lines
from rules.matchers import Matcher, MatcherError, parse_matcher

MATCHABLE_LABELS = ("site", "device", *LABELS, "kind")
BUILTIN_RULES = ("MonitoringDegraded", "Watchdog", "BrokerQueueFilling", "BrokerDroppingMessages")
SEVERITIES = ("critical", "warning", "info")
"""Most severe first. What routes select on (`severity=critical`): a misspelt severity would reach no
receiver, so it is refused."""


class RuleFileError(ValueError):
    """A rule file that cannot be used; one line per problem: `file:line: key: what is wrong`."""


class _ProblemAt(ValueError):
    """A problem a model-level check finds in one of the model's nested keys: `at` is that key's path
    below the model, so the error names its line (e.g. the `metric:` line), not the rule's."""

    def __init__(self, message: str, at: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.at = at


Duration = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Op = Literal[">", ">=", "<", "<=", "==", "!="]
Scalar = float | bool | str


def _durations(*names: str):
    return field_validator(*names, mode="before")(lambda cls, v: parse_optional_duration(v))


def _matchers(value: Any) -> tuple[Matcher, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):  # {site: park} is shorthand for ["site=park"]
        value = [f"{k}={v}" for k, v in value.items()]
    if not isinstance(value, list | tuple):
        raise ValueError("match is a list of matchers such as [\"site=park\", \"device=~inv-.*\"]")
    out = []
    for item in value:
        if isinstance(item, Matcher):
            out.append(item)
            continue
        try:
            out.append(parse_matcher(str(item)))
        except MatcherError as err:
            raise ValueError(str(err)) from None
    return tuple(out)


Matchers = Annotated[tuple[Matcher, ...], PlainSerializer(lambda matchers: [str(m) for m in matchers],
                                                           return_type=list[str], when_used="json")]
"""Label matchers; in JSON (the API's rule definitions) as written in the rule file: "device=~inv-.*"."""


class Threshold(_Model):
    metric: str
    op: Op
    value: Scalar | None = None
    value_from: Literal["room_capacity"] | None = None
    clear: float | None = None
    """Hysteresis: once true, the condition stays true until the value is past `clear` (below it for
    `>`/`>=`, above it for `<`/`<=`)."""

    @model_validator(mode="after")
    def _check(self) -> Threshold:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("give exactly one of value or value_from")
        if self.clear is not None:
            if self.op in ("==", "!="):
                raise ValueError("clear (hysteresis) needs an ordering operator (>, >=, <, <=)")
            if isinstance(self.value, float | int) and not isinstance(self.value, bool):
                wrong = self.clear > self.value if self.op in (">", ">=") else self.clear < self.value
                if wrong:
                    side = "below" if self.op in (">", ">=") else "above"
                    raise ValueError(f"clear ({self.clear:g}) must be {side} the firing value ({self.value:g}), "
                                     "or the alert would flap")
        return self


class Absence(_Model):
    after_s: Duration
    offline: bool = True
    """Also true while the device's status topic says `offline` (its last will)."""
    scope: Literal["device", "site"] = "device"

    _d = _durations("after_s")


class Aggregate(_Model):
    metric: str
    func: Literal["mean", "min", "max", "percentile", "rate", "loss_ratio"]
    q: float | None = Field(None, ge=0, le=100)
    window_s: Duration | None = None
    window_readings: int | None = Field(None, ge=2, le=100_000)
    op: Op
    value: float
    clear: float | None = None
    min_readings: int = Field(1, ge=1)

    _d = _durations("window_s")

    @model_validator(mode="after")
    def _check(self) -> Aggregate:
        if (self.window_s is None) == (self.window_readings is None):
            raise ValueError("give exactly one of window_s or window_readings")
        if self.func == "percentile" and self.q is None:
            raise ValueError("func percentile needs q (0..100), e.g. q: 95")
        if self.clear is not None and self.op in ("==", "!="):
            raise ValueError("clear (hysteresis) needs an ordering operator (>, >=, <, <=)")
        return self


class Term(_Model):
    kind: Kind
    metric: str
    op: Op
    value: Scalar
    quantifier: Literal["all", "any"] = "any"
    role: Literal["primary", "backup"] | None = None
    match: Matchers = ()
    absent_counts: bool = False
    """A device that is offline or silent (see absent_after_s of the composite) meets the term."""

    _m = field_validator("match", mode="before")(lambda cls, v: _matchers(v))


class Composite(_Model):
    all: tuple[Term, ...] | None = None
    any: tuple[Term, ...] | None = None
    absent_after_s: Duration = 120.0

    _d = _durations("absent_after_s")

    @model_validator(mode="after")
    def _check(self) -> Composite:
        if (self.all is None) == (self.any is None):
            raise ValueError("a composite has exactly one of all: [terms] or any: [terms]")
        if not (self.all or self.any):
            raise ValueError("a composite needs at least one term")
        return self

    @property
    def terms(self) -> tuple[Term, ...]:
        return self.all or self.any or ()


class Runout(_Model):
    metric: str = "battery_soc_pct"
    window_s: Duration = 900.0
    min_points: int = Field(5, ge=2)
    within_s: Duration | None = None
    before_grid_return: bool = True
    empty_at: float = 0.0
    """The value that counts as empty (e.g. the inverter's cut-off SoC)."""

    _d = _durations("window_s", "within_s")

    @model_validator(mode="after")
    def _check(self) -> Runout:
        if self.within_s is None and not self.before_grid_return:
            raise ValueError("say when to alert: within_s, before_grid_return, or both")
        return self


class Condition(_Model):
    threshold: Threshold | None = None
    absence: Absence | None = None
    aggregate: Aggregate | None = None
    composite: Composite | None = None
    runout: Runout | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a condition has exactly one of threshold, absence, aggregate, composite, runout "
                             f"(got {', '.join(given) or 'none'})")
        return self

    @property
    def type(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


MAX_LOAD_SHEDDING_GRACE_S = 7200.0


class Context(_Model):
    load_shedding: dict[Literal["scheduled", "unscheduled"], dict[str, str]] | None = None
    load_shedding_grace_s: Duration = Field(0.0, alias="load_shedding_grace")
    """An outage this close to a published window (a few minutes early, or overrunning it) still counts
    as scheduled: utilities keep their schedules to the minute no better than that."""
    occupancy: dict[Literal["occupied", "empty"], dict[str, str]] | None = None

    _d = _durations("load_shedding_grace_s")

    @model_validator(mode="after")
    def _grace_needs_load_shedding(self) -> Context:
        if self.load_shedding_grace_s and self.load_shedding is None:
            raise ValueError("load_shedding_grace applies to the load_shedding context; set load_shedding too")
        if self.load_shedding_grace_s > MAX_LOAD_SHEDDING_GRACE_S:
            raise ValueError(f"load_shedding_grace is at most {MAX_LOAD_SHEDDING_GRACE_S / 3600:g}h: a longer one "
                             "would call most outages scheduled")
        return self


class Rule(_Model):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    alertname: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    """The alert's name if not the rule's (several rules may raise one alertname, e.g. UplinkDegraded
    for latency and for loss); alerts of different rules never share a fingerprint."""
    kind: Kind | None = None
    match: Matchers = ()
    condition: Condition
    for_s: Duration = Field(0.0, alias="for")
    keep_firing_for_s: Duration = Field(0.0, alias="keep_firing_for")
    active_when: Literal["always", "open", "closed", "load_shedding", "no_load_shedding"] = "always"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    context: Context = Context()

    _m = field_validator("match", mode="before")(lambda cls, v: _matchers(v))
    _d = _durations("for_s", "keep_firing_for_s")

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"\A[A-Za-z_][A-Za-z0-9_]*\Z", name) or name == "alertname":
                raise ValueError(f"label name {name!r} must match [A-Za-z_][A-Za-z0-9_]* and not be alertname")
        return value

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.name in BUILTIN_RULES or self.alertname in BUILTIN_RULES:
            raise ValueError(f"{self.name} is built into the engine; choose another name")
        ctype = self.condition.type
        if ctype not in ("composite", "absence") and self.kind is None:
            raise ValueError(f"a {ctype} rule needs kind (inverter, uplink or occupancy)")
        for matcher in self.match:
            if matcher.name not in MATCHABLE_LABELS:
                raise ValueError(f"match on {matcher.name!r}: rules select by {', '.join(MATCHABLE_LABELS)}")
        for kind, metric, at in self._metrics_used():
            _check_metric(kind, metric, at)
        for at, labels in self._label_sets():
            severity = labels.get("severity")
            if severity is not None and severity not in SEVERITIES:
                raise _ProblemAt(f"unknown severity {severity!r}; use one of {', '.join(SEVERITIES)}",
                                 (*at, "severity"))
        known = self.placeholders()
        for name, text in self.annotations.items():
            _check_placeholders(text, known, ("annotations", name))
        return self

    def _label_sets(self) -> Iterable[tuple[tuple[str, ...], Mapping[str, str]]]:
        """The rule's labels and each context override, with the path of each below the rule."""
        yield ("labels",), self.labels
        for situation in ("load_shedding", "occupancy"):
            for case, labels in (getattr(self.context, situation) or {}).items():
                yield ("context", situation, case), labels

    def label_names(self) -> set[str]:
        """The labels this rule gives its alerts beyond their identity: its own, those its context
        overrides set, and the context labels themselves (`outage`, `occupancy`)."""
        names: set[str] = set()
        for _, labels in self._label_sets():
            names.update(labels)
        if self.context.load_shedding is not None:
            names.add("outage")
        if self.context.occupancy is not None:
            names.add("occupancy")
        return names

    def placeholders(self) -> frozenset[str]:
        """The names an annotation of this rule may use in `{...}`: what the engine fills in
        (rules/evaluate.py `_annotations`). A device-scoped rule adds the device's labels and the
        metrics of its latest reading; a site-scoped one (composite, absence with scope site) has only
        the site."""
        names = {"value", "alertname", "site", *self.label_names()}
        c = self.condition
        site_scoped = c.composite is not None or (c.absence is not None and c.absence.scope == "site")
        if not site_scoped:
            kinds = [self.kind] if self.kind is not None else list(METRICS_BY_NAME)
            names.update(("kind", "device", "fault_code"))
            for kind in kinds:
                names.update(METRICS_BY_NAME[kind])
            if Kind.OCCUPANCY in kinds:
                names.add("capacity")
        if c.runout is not None:
            names.update(("time_to_empty_min", "grid_return"))
        return frozenset(names)

    @property
    def alert_name(self) -> str:
        return self.alertname or self.name

    def _metrics_used(self) -> Iterable[tuple[Kind, str, tuple[str | int, ...]]]:
        """(kind, metric, path of its `metric:` key below the rule) of every metric the condition reads."""
        c = self.condition
        if c.composite is not None:
            quantifier = "all" if c.composite.all is not None else "any"
            return [(t.kind, t.metric, ("condition", "composite", quantifier, i, "metric"))
                    for i, t in enumerate(c.composite.terms)]
        inner = c.threshold or c.aggregate or c.runout
        if inner is None or self.kind is None:
            return []
        return [(self.kind, inner.metric, ("condition", c.type, "metric"))]


def _check_metric(kind: Kind, metric: str, at: tuple[str | int, ...]) -> None:
    known = METRICS_BY_NAME[kind]
    if metric not in known:
        raise _ProblemAt(f"{kind.value} readings have no metric {metric!r}; known: {', '.join(known)}", at)
    if known[metric].type is MetricType.LABEL:
        raise _ProblemAt(f"{metric!r} is a label; select it with match: [\"{metric}=...\"]", at)


def _check_placeholders(text: str, known: frozenset[str], at: tuple[str | int, ...]) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as err:
        raise _ProblemAt(f"{err} (write {{{{ and }}}} for literal braces)", at) from None
    for field in fields:
        name = re.split(r"[.\[]", field, maxsplit=1)[0]
        if name not in known:
            raise _ProblemAt(f"unknown placeholder {{{field}}}: it would be sent as written; this rule knows "
                             f"{', '.join(sorted(known))}", at)


class InhibitRule(_Model):
    """While a firing alert matches `source`, alerts matching `target` with the same values of the
    `equal` labels are muted (still listed in the incident as inhibited)."""

    source: Matchers
    target: Matchers
    equal: tuple[str, ...] = ("site",)

    _m = field_validator("source", "target", mode="before")(lambda cls, v: _matchers(v))

    def label_names(self) -> Iterable[tuple[tuple[str | int, ...], str]]:
        """(path below the inhibition, label name) of every label it selects or compares on."""
        for side in ("source", "target"):
            for index, matcher in enumerate(getattr(self, side)):
                yield (side, index), matcher.name
        for index, name in enumerate(self.equal):
            yield ("equal", index), name


class RuleFile(_Model):
    rules: tuple[Rule, ...] = ()
    inhibit_rules: tuple[InhibitRule, ...] = ()


class RulePack(_Model):
    """All rules and inhibitions of the loaded files, with rule names unique across them."""

    rules: tuple[Rule, ...] = ()
    inhibit_rules: tuple[InhibitRule, ...] = ()
    sources: tuple[str, ...] = ()

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"no rule named {name!r}")


def check_rule_files(paths: Sequence[Path | str]) -> list[str]:
    """Every problem in `paths` as `file:line: rule NAME: key: what is wrong` (or `key:` outside a
    rule); empty when all are valid."""
    return _read_rule_files(paths)[0]


def _read_rule_files(paths: Sequence[Path | str]) -> tuple[list[str], list[RuleFile]]:
    """The problems of `paths`, and the files that parsed (all of them when there are no problems)."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    parsed_files: list[tuple[Path, RuleFile, Mapping]] = []
    for path in map(Path, paths):
        try:
            parsed, lines = _load_one(path)
        except RuleFileError as err:
            problems.extend(str(err).splitlines())
            continue
        parsed_files.append((path, parsed, lines))
        for index, rule in enumerate(parsed.rules):
            where = f"{path}:{line_of(lines, ('rules', index, 'name')) or '?'}"
            if rule.name in seen:
                problems.append(f"{where}: rule {rule.name}: name: already defined at {seen[rule.name]}; "
                                "names must be unique")
            else:
                seen[rule.name] = where
    labels = known_label_names(rule for _, parsed, _ in parsed_files for rule in parsed.rules)
    for path, parsed, lines in parsed_files:
        for index, inhibit in enumerate(parsed.inhibit_rules):
            for at, name in inhibit.label_names():
                if name not in labels:
                    loc = ("inhibit_rules", index, *at)
                    problems.append(f"{path}:{line_of(lines, loc) or '?'}: {'.'.join(map(str, loc))}: no alert "
                                    f"has a label {name!r}, so this never matches; labels are "
                                    f"{', '.join(sorted(labels))}")
    return problems, [parsed for _, parsed, _ in parsed_files]


def known_label_names(rules: Iterable[Rule]) -> frozenset[str]:
    """Every label an alert of `rules` (or a built-in alert) can carry: what routes, inhibitions and
    silences can select on."""
    names = {"alertname", "severity", "instance", "receiver", *MATCHABLE_LABELS}
    for rule in rules:
        names |= rule.label_names()
    return frozenset(names)


def load_rule_files(paths: Sequence[Path | str]) -> RulePack:
    """Load and validate rule files into one `RulePack`. Raises `RuleFileError` (all problems)."""
    problems, parsed_files = _read_rule_files(paths)
    if problems:
        raise RuleFileError("\n".join(problems))
    rules: list[Rule] = []
    inhibits: list[InhibitRule] = []
    for parsed in parsed_files:
        rules.extend(parsed.rules)
        inhibits.extend(parsed.inhibit_rules)
    return RulePack(rules=tuple(rules), inhibit_rules=tuple(inhibits), sources=tuple(str(p) for p in paths))


def load_rules(paths: Sequence[Path | str]) -> tuple[Rule, ...]:
    """The rules of `paths` (for listing them, e.g. in the API). Raises `RuleFileError`."""
    return load_rule_files(paths).rules


def _load_one(path: Path) -> tuple[RuleFile, Mapping]:
    try:
        data, lines = read_yaml_with_lines(path, "rule")
    except SiteFileError as err:
        raise RuleFileError(str(err)) from None
    if data is None:
        return RuleFile(), lines
    if not isinstance(data, dict):
        raise RuleFileError(f"{path}:1: a rule file is a mapping with rules: [...] (and inhibit_rules:)")
    try:
        return RuleFile.model_validate(data), lines
    except ValidationError as err:
        raise RuleFileError(_describe(err, path, lines, data)) from None


def _describe(err: ValidationError, path: Path, lines: Mapping, data: Mapping) -> str:
    # pydantic names aliased fields by alias already. A model-level check that found its problem in a
    # nested key (`_ProblemAt`) is moved to that key, so the line printed is the offending one. A
    # problem inside a rule is told by the rule's name (`rule GridOutage: labels.severity`): that is
    # what the author searches for, not its index.
    out = []
    for problem in err.errors():
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, _ProblemAt):
            problem = {**problem, "loc": (*problem["loc"], *cause.at)}
        text = describe_validation_error(ValidationError.from_exception_data(err.title, [problem]),  # type: ignore[list-item]
                                         path, lines)
        loc = problem["loc"]
        name = _rule_name(data, loc)
        if name is not None:
            indexed = ".".join(map(str, loc[:2]))
            text = text.replace(f": {indexed}.", f": rule {name}: ", 1).replace(f": {indexed}:", f": rule {name}:", 1)
        out.append(text)
    return "\n".join(out)


def _rule_name(data: Mapping, loc: tuple) -> str | None:
    if len(loc) < 2 or loc[0] != "rules" or not isinstance(loc[1], int):
        return None
    rules = data.get("rules")
    if not isinstance(rules, list) or loc[1] >= len(rules) or not isinstance(rules[loc[1]], Mapping):
        return None
    name = rules[loc[1]].get("name")
    return name if isinstance(name, str) and name else None
