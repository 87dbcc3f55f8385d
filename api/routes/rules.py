"""Rules: list and show the loaded rule files; validate a rule file before deploying it (admin)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import Admin, ServicesDep, Viewer
from api.problems import ERROR_RESPONSES, NotFound, Unavailable, Unprocessable
from core.yaml_limits import YamlLimitError, load_yaml
from rules.model import Rule, RuleFileError, check_rule_files, load_rules

log = logging.getLogger("facmon.api")
router = APIRouter(prefix="/rules", tags=["rules"], responses=ERROR_RESPONSES)

RuleName = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]


class RuleOut(BaseModel):
    name: str
    alertname: str
    kind: str | None
    condition_type: str
    definition: dict[str, Any] = Field(description="the rule as loaded (durations in seconds)")


class RuleCheckIn(BaseModel):
    yaml: str = Field(max_length=1_000_000, description="the text of a rule file")


class RuleCheckOut(BaseModel):
    valid: bool
    problems: list[str] = Field(description="one line per problem: line: key: what is wrong")


def rule_out(rule: Rule) -> RuleOut:
    return RuleOut(name=rule.name, alertname=rule.alert_name, kind=rule.kind.value if rule.kind else None,
                   condition_type=rule.condition.type, definition=rule.model_dump(mode="json", by_alias=True))


def _rules(services: ServicesDep) -> list[Rule]:
    if not services.rule_files:
        raise Unavailable("no rule files are configured for this API")
    try:
        return list(load_rules(services.rule_files))
    except RuleFileError as err:  # names the server's files and their lines: for the operator's log
        log.warning("the configured rule files do not load", extra={"problems": str(err)})
        raise Unavailable("the rule files configured for this API do not load; `facmon rules check` on the "
                          "server says why") from None


@router.get("", response_model=list[RuleOut], summary="List the loaded rules")
def list_rules(_: Viewer, services: ServicesDep) -> list[RuleOut]:
    return [rule_out(r) for r in _rules(services)]


@router.get("/{name}", response_model=RuleOut, summary="One rule")
def get_rule(name: RuleName, _: Viewer, services: ServicesDep) -> RuleOut:
    for rule in _rules(services):
        if rule.name == name:
            return rule_out(rule)
    raise NotFound(f"no rule named {name!r}; GET /api/v1/rules lists them")


@router.post("/validate", response_model=RuleCheckOut, summary="Check a rule file without loading it")
def validate_rules(body: RuleCheckIn, _: Admin) -> RuleCheckOut:
    """A document over the YAML limits (an alias bomb, recursion, deep nesting) is 422 naming the
    limit, before anything walks it; other YAML errors are problems of the file like any other."""
    try:
        load_yaml(body.yaml, what="rule file")
    except YamlLimitError as err:
        where = f"line {err.line}: " if err.line is not None else ""
        raise Unprocessable.param("yaml", f"{where}{err}") from None
    except yaml.YAMLError:
        pass  # reported with its line by check_rule_files below
    with tempfile.TemporaryDirectory(prefix="facmon-rulecheck-") as tmp:
        path = FsPath(tmp) / "submitted.yaml"
        path.write_text(body.yaml, encoding="utf-8")
        problems = [p.replace(str(path), "rules") for p in check_rule_files([path])]
    return RuleCheckOut(valid=not problems, problems=problems)
