"""`facmon api` wiring: the API opens the rules engine's own store and lists the engine's rule files."""

from __future__ import annotations

from pathlib import Path

from core.clock import FakeClock
from core.config import FacmonConfig
from facmon.commands.api import wired_services

PACK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "park.yaml"


def test_api_uses_the_engines_store_path_and_rule_files(tmp_path: Path) -> None:
    config = FacmonConfig.model_validate({
        "rules": {"store_path": str(tmp_path / "engine" / "alerts.db"), "rule_files": [str(PACK)]},
        "api": {"keys_db": str(tmp_path / "keys.sqlite")},
    })
    with wired_services(config, FakeClock()) as services:
        assert Path(services.alerts.path) == tmp_path / "engine" / "alerts.db"
        assert list(services.rule_files) == [PACK]
    assert (tmp_path / "engine" / "alerts.db").exists()


def test_there_is_no_second_store_setting_in_the_api_section() -> None:
    assert "rules_store" not in FacmonConfig().api.model_dump()
