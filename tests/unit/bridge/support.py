"""The sources' own payloads (tests/fixtures/bridge/payloads.yaml) and the shipped mappings, for the
bridge's tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from bridge.mapping import BridgeMapping, load_mapping

ROOT = Path(__file__).resolve().parents[3]
MAPPINGS = ROOT / "bridge" / "mappings"
PAYLOADS: dict[str, dict[str, str]] = yaml.safe_load((ROOT / "tests" / "fixtures" / "bridge" / "payloads.yaml")
                                                     .read_text(encoding="utf-8"))


def payload(source: str, name: str) -> bytes:
    return PAYLOADS[source][name].encode()


def shipped(name: str) -> BridgeMapping:
    return load_mapping(MAPPINGS / f"{name}.yaml")
