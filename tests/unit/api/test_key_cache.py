"""KeyStore.verified: a key accepted by `authenticate` is trusted from memory for VERIFIED_FOR_S on
the store's clock; revoking through the store ends that at once, revoking elsewhere within the bound."""

from __future__ import annotations

from pathlib import Path

from api.keys import VERIFIED_FOR_S, KeyStore, Role
from core.clock import FakeClock


def test_a_verified_key_is_answered_from_memory_until_it_ages_out(tmp_path: Path) -> None:
    clock = FakeClock()
    store = KeyStore(tmp_path / "keys.sqlite", clock)
    key, token = store.create("wall screen", Role.VIEWER)
    assert store.verified(token) is None  # never authenticated yet
    assert store.authenticate(token) == key
    assert store.verified(token) == key
    assert store.verified(token[:-1] + "x") is None
    other = KeyStore(tmp_path / "keys.sqlite", clock)  # `facmon keys revoke` in another process
    other.revoke(key.id)
    clock.advance(VERIFIED_FOR_S)
    assert store.verified(token) == key  # still within the bound
    clock.advance(0.001)
    assert store.verified(token) is None
    assert store.authenticate(token) is None
    other.close()
    store.close()


def test_revoking_through_the_same_store_ends_trust_at_once(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite", FakeClock())
    key, token = store.create("phone", Role.OPERATOR)
    store.authenticate(token)
    store.revoke(key.id)
    assert store.verified(token) is None
    assert store.authenticate(token) is None
    store.close()
