"""Where facmon keeps what it must find again: one var directory, the same from any working
directory, and a user's own paths left alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from api.keys import KeyStore
from core.clock import FakeClock
from core.config import STATE_PATHS, FacmonConfig, load_config, settle_state_paths
from facmon import cli
from facmon.commands.up import DEMO_VIEWER, demo_viewer_token


def _value(config: FacmonConfig, dotted: str) -> Path:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    assert isinstance(value, Path)
    return value


def test_every_state_default_lives_under_var():
    defaults = FacmonConfig()
    assert all(_value(defaults, dotted).parts[0] == "var" for dotted in STATE_PATHS)


def test_state_paths_follow_var_dir_and_keep_what_the_user_set(tmp_path):
    config = settle_state_paths(load_config(None, {"FACMON_LOCAL__VAR_DIR": str(tmp_path / "v"),
                                                   "FACMON_RULES__STORE_PATH": "/srv/alerts.db"}))
    assert config.api.keys_db == tmp_path / "v" / "api-keys.sqlite"
    assert config.collector.spool.dir == tmp_path / "v" / "spool"
    assert config.rules.store_path == Path("/srv/alerts.db")
    home = settle_state_paths(load_config(None, {}), home=tmp_path)
    assert {_value(home, dotted).parent for dotted in STATE_PATHS} <= {tmp_path / "var", tmp_path / "var" / "spool"}
    assert settle_state_paths(load_config(None, {})).api.keys_db == Path("var/api-keys.sqlite")  # a config's cwd


def test_facmon_keys_finds_the_same_store_from_any_directory(tmp_path, monkeypatch, capsys):
    """Without a configuration file the checkout's var/ holds the keys: a key made in one directory
    is listed from another (it used to create a second key database silently)."""
    monkeypatch.setattr(cli, "SOURCE_CHECKOUT", tmp_path / "checkout")
    monkeypatch.delenv("FACMON_CONFIG", raising=False)
    for name in [n for n in os.environ if n.startswith("FACMON_")]:
        monkeypatch.delenv(name)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    assert cli.main(["keys", "create", "--name", "night shift", "--role", "operator"]) == 0
    created = capsys.readouterr()
    assert str(tmp_path / "checkout" / "var" / "api-keys.sqlite") in created.err
    monkeypatch.chdir(second)
    assert cli.main(["keys", "list"]) == 0
    assert "night shift" in capsys.readouterr().out
    assert not (first / "var").exists() and not (second / "var").exists()


def test_facmon_keys_list_without_a_store_says_where_it_looked(tmp_path, capsys):
    config = tmp_path / "facmon.yaml"
    config.write_text(f"api: {{keys_db: {tmp_path / 'nowhere.sqlite'}}}\n")
    assert cli.main(["--config", str(config), "keys", "list"]) == 1
    assert f"no key store at {tmp_path / 'nowhere.sqlite'}" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.sqlite").exists()


def test_the_demo_viewer_key_is_made_once_kept_private_and_replaced_when_revoked(tmp_path):
    config = settle_state_paths(load_config(None, {"FACMON_LOCAL__VAR_DIR": str(tmp_path / "var")}))
    token = demo_viewer_token(config)
    token_file = tmp_path / "var" / "demo-viewer.key"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert demo_viewer_token(config) == token
    store = KeyStore(config.api.keys_db, FakeClock(0.0))
    try:
        key = store.authenticate(token)
        assert key is not None and key.role.value == "viewer" and key.name == DEMO_VIEWER
        store.revoke(key.id)
        replaced = demo_viewer_token(config)
        assert replaced != token and store.authenticate(replaced) is not None
        assert [k.name for k in store.list()].count(DEMO_VIEWER) == 2
    finally:
        store.close()


@pytest.mark.parametrize("listen, signed_in", [("127.0.0.1:8080", True), ("0.0.0.0:8080", False)])
def test_the_signed_in_link_is_only_offered_on_loopback(listen, signed_in):
    from facmon.commands.up import _loopback

    assert _loopback(listen) is signed_in
