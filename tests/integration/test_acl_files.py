"""`facmon acl generate` as pure functions: accounts, the `$7$` hash, the ACL text, stable passwords."""

from __future__ import annotations

import base64
import hashlib
import stat
import subprocess
from pathlib import Path

import pytest

from core.site import load_site
from facmon.commands.acl import acl_file, generate, hash_password, plan_accounts

PARK = load_site(Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml")


def test_one_account_per_device_plus_the_collector() -> None:
    accounts = plan_accounts([PARK], ["facmon-collector"], {}, make_password=lambda: "pw")
    assert [a.username for a in accounts][:3] == ["park.inv-main", "park.inv-lab", "park.uplink-ptcl"]
    assert len(accounts) == 2 + 2 + 6 + 1
    by_name = {a.username: a for a in accounts}
    assert by_name["park.occ-lab"].write_prefix == "facmon/v1/park/occupancy/occ-lab/#"
    assert by_name["park.occ-lab"].read_prefix is None
    assert by_name["facmon-collector"].read_prefix == "facmon/v1/#"


def test_acl_text() -> None:
    accounts = plan_accounts([PARK], ["facmon-collector"], {}, make_password=lambda: "pw")
    text = acl_file(accounts)
    assert "user park.uplink-ptcl\ntopic write facmon/v1/park/uplink/uplink-ptcl/#\n" in text
    assert text.rstrip().endswith("user facmon-collector\ntopic read facmon/v1/#")
    before_first_user = text.split("\nuser ")[0]
    assert "\ntopic" not in before_first_user  # nothing granted to anonymous clients


def test_hash_is_pbkdf2_sha512_as_mosquitto_writes_it() -> None:
    salt = bytes(range(12))
    _, seven, rounds, salt_b64, digest_b64 = hash_password("secret", salt).split("$")
    assert (seven, rounds, base64.b64decode(salt_b64)) == ("7", "101", salt)
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101)


def test_same_hash_as_mosquitto_passwd(tmp_path: Path) -> None:
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "pw"), "alice", "s3cret"], check=True,
                   capture_output=True, timeout=10)
    _, line = (tmp_path / "pw").read_text().strip().split(":", 1)
    salt = base64.b64decode(line.split("$")[3])
    assert hash_password("s3cret", salt) == line


def test_rerun_keeps_passwords_rotates_on_request_and_protects_the_secrets(tmp_path: Path) -> None:
    first = {a.username: a.password for a in generate([PARK], tmp_path)}
    second = {a.username: a.password for a in generate([PARK], tmp_path, rotate=["park.inv-lab"])}
    assert {k: v for k, v in second.items() if k != "park.inv-lab"} == {
        k: v for k, v in first.items() if k != "park.inv-lab"}
    assert second["park.inv-lab"] != first["park.inv-lab"]
    assert stat.S_IMODE((tmp_path / "credentials.yaml").stat().st_mode) == 0o600


def test_two_sites_with_the_same_id_are_refused() -> None:
    with pytest.raises(ValueError, match=r"account names used twice: park\.inv-lab"):
        plan_accounts([PARK, PARK], [], {})
