"""Regenerate the tables in docs/contract.md and docs/configuration.md from the code they describe.

    .venv/bin/python -m docs.generate          rewrite the generated blocks in place
    .venv/bin/python -m docs.generate --check  exit 1 if a block is out of date

A generated block sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`;
everything outside the markers is hand-written. Unit tests (tests/unit/core/test_contract.py and
test_config.py) fail when a block no longer matches `core.contract.METRICS` or the settings models.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from core.config import ENV_PREFIX, FacmonConfig
from core.contract import METRICS, Kind, Metric, MetricType

DOCS = Path(__file__).resolve().parent
CONFIG_SECTIONS = ("sites", "mqtt", "influxdb", "collector", "bridge", "agent", "local", "log")
_BLOCK = re.compile(r"(<!-- BEGIN generated: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- END generated: (?P=name) -->)",
                    re.DOTALL)


def _range(metric: Metric) -> str:
    if metric.choices:
        return " \\| ".join(f"`{c}`" for c in metric.choices)
    if metric.minimum is None:
        return ""
    return f"{metric.minimum:g} … {metric.maximum:g}"


_TYPE_NAMES = {MetricType.FLOAT: "number", MetricType.INT: "integer", MetricType.BOOL: "boolean",
               MetricType.TEXT: "string (≤ 256)", MetricType.CHOICE: "string (one of)",
               MetricType.LABEL: "string label (tag, 1–64)"}


def metrics_table(kind: Kind) -> str:
    """The Markdown table of one kind's metrics: name, type, unit, range, required, null, meaning."""
    rows = ["| metric | type | unit | range | required | null | meaning |", "|---|---|---|---|---|---|---|"]
    for m in METRICS[kind]:
        rows.append(f"| `{m.name}` | {_TYPE_NAMES[m.type]} | {m.unit} | {_range(m)} | "
                    f"{'yes' if m.required else 'no'} | {'allowed' if m.nullable else ''} | {m.description} |")
    return "\n".join(rows) + "\n"


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Field name → the docstring written under it in the class body (pydantic does not keep them)."""
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body  # type: ignore[attr-defined]
        for node, following in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)):
                docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


_BOUNDS = (("ge", "≥ {}"), ("gt", "> {}"), ("le", "≤ {}"), ("lt", "< {}"), ("min_length", "length ≥ {}"),
           ("max_length", "length ≤ {}"), ("pattern", "matches `{}`"))


def _type_name(field: FieldInfo) -> str:
    annotation = field.annotation
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
    text = text.replace("NoneType", "null").replace("None", "null").replace("Literal", "one of ")
    limits = [template.format(getattr(item, attr)) for item in field.metadata for attr, template in _BOUNDS
              if getattr(item, attr, None) is not None]
    return ", ".join([text, *limits]).replace("|", "\\|")


def _default(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    if isinstance(value, tuple) and not value:
        return "[]"
    return f"`{value}`"


def _config_rows(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[str]:
    docs = _attribute_docs(model)
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _config_rows(annotation, (*path, name))
            continue
        dotted = ".".join((*path, name))
        secret = "SecretStr" in str(annotation)
        default = "— (environment or `_file` only)" if secret else _default(field.default)
        env = ENV_PREFIX + "__".join((*path, name)).upper()
        yield f"| `{dotted}` | {_type_name(field)} | {default} | `{env}` | {docs.get(name, '')} |"


def config_table(section: str) -> str:
    """The Markdown table of one config section: key, type, default, environment variable, meaning."""
    model = FacmonConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    rows = ["| key | type | default | environment | meaning |", "|---|---|---|---|---|",
            *_config_rows(model, (section,))]
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, tuple[Path, Callable[[], str]]] = {
    **{f"metrics.{kind.value}": (DOCS / "contract.md", lambda kind=kind: metrics_table(kind)) for kind in Kind},
    **{f"config.{s}": (DOCS / "configuration.md", lambda s=s: config_table(s)) for s in CONFIG_SECTIONS},
}


def render(path: Path) -> str:
    """`path`'s text with every generated block replaced by its current rendering."""
    def replace(match: re.Match[str]) -> str:
        target, generate = GENERATORS[match.group("name")]
        assert target == path, f"block {match.group('name')} belongs in {target.name}"
        return match.group(1) + generate() + match.group(4)

    return _BLOCK.sub(replace, path.read_text(encoding="utf-8"))


def main(argv: list[str]) -> int:
    stale = []
    for path in sorted({target for target, _ in GENERATORS.values()}):
        fresh = render(path)
        if fresh != path.read_text(encoding="utf-8"):
            stale.append(path.name)
            if "--check" not in argv:
                path.write_text(fresh, encoding="utf-8")
    if stale and "--check" in argv:
        print(f"out of date: {', '.join(stale)}; run .venv/bin/python -m docs.generate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
