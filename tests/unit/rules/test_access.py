"""rules.access.AlertAccess is what the API may use of the rules store: the store provides each of its
methods with the same parameters, and the API imports nothing else of `rules.store`."""

from __future__ import annotations

import inspect
from pathlib import Path

from rules.access import AlertAccess
from rules.store import AlertStore

ROOT = Path(__file__).resolve().parents[3]


def test_the_store_provides_every_method_of_the_access_with_its_parameters() -> None:
    methods = [name for name, value in vars(AlertAccess).items() if callable(value) and not name.startswith("_")]
    assert len(methods) == 12  # feed() came with the notifications feed
    for name in methods:
        assert inspect.signature(getattr(AlertStore, name)).parameters.keys() == inspect.signature(
            getattr(AlertAccess, name)).parameters.keys(), name


def test_the_api_reaches_the_rules_store_only_through_the_access() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "api").rglob("*.py")
                 if "rules.store" in p.read_text(encoding="utf-8")]
    assert offenders == []
