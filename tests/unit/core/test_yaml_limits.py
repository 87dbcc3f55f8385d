"""core.yaml_limits: hostile YAML (alias bombs, recursive aliases, deep nesting, huge or alias-heavy
documents) is refused with an error naming the limit and the line; every other document loads
exactly as yaml.safe_load loads it. Also the four places that read YAML files refuse the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import ConfigError, load_config
from core.site import SiteFileError, load_site
from core.yaml_limits import YamlLimitError, YamlLimits, compose_yaml, load_yaml
from facmon.commands.acl import CredentialsFileError, read_credentials
from rules.model import check_rule_files


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each anchor a list of `width` aliases of the one before (9**9 values)."""
    lines = ['a0: &a0 [' + ", ".join(['"lol"'] * width) + ']']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb": (alias_bomb(), "max_values", 7),
    "recursive alias": ("&a [*a]\n", "recursive_alias", 1),
    "recursive alias in a mapping": ("top: &t\n  child: *t\n", "recursive_alias", 2),
    "5,000-deep flow list": ("[" * 5000 + "]" * 5000, "max_depth", 1),
    "5,000-deep block list": ("- " * 5000 + "x\n", "max_depth", 1),
    "depth reached through aliases": ("a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50,
                                      "max_depth", 2),
    "too many aliases": ("x: &x 1\nl: [" + ", ".join(["*x"] * 1001) + "]\n", "max_aliases", 2),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_documents_are_refused_naming_the_limit_and_line(case: str) -> None:
    text, limit, line = HOSTILE[case]
    with pytest.raises(YamlLimitError) as caught:
        load_yaml(text, what="rule file")
    assert (caught.value.limit, caught.value.line) == (limit, line)
    assert "rule file" in str(caught.value)
    assert isinstance(caught.value, yaml.YAMLError)  # handlers written for PyYAML's errors still catch it


def test_a_document_over_max_chars_is_refused_before_parsing() -> None:
    with pytest.raises(YamlLimitError) as caught:
        load_yaml("a: [" + "1, " * 100 + "1]", what="config file", limits=YamlLimits(max_chars=100))
    assert (caught.value.limit, caught.value.line) == ("max_chars", None)
    assert "over the limit of 100" in str(caught.value)


def test_values_are_counted_with_aliases_expanded() -> None:
    text = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n"  # mapping 1 + a 1 + [1,2,3] 4 + b 1 + [*a x3] 1+3*4 = 20
    assert load_yaml(text, what="x", limits=YamlLimits(max_values=20)) == {"a": [1, 2, 3], "b": [[1, 2, 3]] * 3}
    with pytest.raises(YamlLimitError, match="more than 19 values"):
        load_yaml(text, what="x", limits=YamlLimits(max_values=19))


def test_yaml_syntax_errors_are_pyyaml_errors_as_before() -> None:
    for text in ("a: [1, 2", "a: *nowhere", "a: 1\n---\nb: 2\n"):
        with pytest.raises(yaml.YAMLError) as caught:
            load_yaml(text, what="x")
        assert not isinstance(caught.value, YamlLimitError)
        with pytest.raises(type(caught.value)):
            yaml.safe_load(text)


def test_merge_keys_and_anchors_within_limits_load_as_safe_load_does() -> None:
    text = "base: &base {kind: inverter, stale_after_s: 60}\ninv1: {<<: *base, id: inv-1}\ninv2: *base\n"
    assert load_yaml(text, what="x") == yaml.safe_load(text)
    node, data = compose_yaml(text, what="x")
    assert data == yaml.safe_load(text)
    assert node is not None and node.value[1][0].start_mark.line == 1  # `inv1` is on line 2


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=40)


@settings(max_examples=200, deadline=None)
@given(_documents)
def test_any_ordinary_document_loads_exactly_as_safe_load(data: object) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    assert load_yaml(text, what="x") == yaml.safe_load(text)
    assert compose_yaml(text, what="x")[1] == yaml.safe_load(text)


# --- the places facmon reads YAML files ----------------------------------------------------------

def test_a_config_file_alias_bomb_is_a_config_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "facmon.yaml"
    path.write_text("mqtt:\n  " + alias_bomb().replace("\n", "\n  "))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert str(caught.value).startswith(f"{path}:8: refused: the config file expands to more than")


def test_a_recursive_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "facmon.yaml"
    path.write_text("mqtt: &m\n  inner: *m\n")
    with pytest.raises(ConfigError, match=r"facmon\.yaml:2: refused: alias \*m stands for a node that contains it"):
        load_config(path, {})


def test_a_deep_site_file_is_a_site_file_error(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("id: park\ninverters: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SiteFileError, match=r"site\.yaml:2: refused: the site file nests deeper than 100 levels"):
        load_site(path)


def test_a_rule_file_alias_bomb_is_one_problem_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(alias_bomb())
    assert check_rule_files([path]) == [
        f"{path}:7: refused: the rule file expands to more than 1,000,000 values once its aliases are followed; "
        "write it without aliases of aliases, or split it"]


def test_a_credentials_file_alias_bomb_is_a_credentials_error(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text(alias_bomb())
    with pytest.raises(CredentialsFileError, match="the credentials file expands to more than"):
        read_credentials(path)
