"""`facmon acl generate` as pure functions: accounts, the `$7$` hash, the ACL text, stable passwords."""

from __future__ import annotations

import base64
import hashlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.site import SiteFileError, load_site
from facmon.commands.acl import (
    DEFAULT_READERS,
    READER_NAME_RULE,
    AccountNameError,
    acl_file,
    generate,
    hash_password,
    plan_accounts,
)

PARK = load_site(Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml")


def by_name_of(accounts: list) -> dict:
    return {a.username: a for a in accounts}


def test_one_account_per_device_plus_the_collector() -> None:
    accounts = plan_accounts([PARK], ["facmon-collector"], {}, make_password=lambda: "pw")
    assert [a.username for a in accounts][:3] == ["park.inv-main", "park.inv-lab", "park.uplink-ptcl"]
    assert len(accounts) == 2 + 2 + 6 + 1 + 1 + 1  # inverters, uplinks, sensors, the generator, the plug, the collector
    assert by_name_of(accounts)["park.gen-main"].write_prefix == "facmon/v1/park/generator/gen-main/#"
    by_name = {a.username: a for a in accounts}
    assert by_name["park.occ-lab"].write_prefix == "facmon/v1/park/occupancy/occ-lab/#"
    assert by_name["park.occ-lab"].read_prefix is None
    assert by_name["facmon-collector"].read_prefix == "facmon/v1/#"


def test_acl_text() -> None:
    accounts = plan_accounts([PARK], ["facmon-collector"], {}, make_password=lambda: "pw")
    text = acl_file(accounts)
    assert "user park.uplink-ptcl\ntopic write facmon/v1/park/uplink/uplink-ptcl/#\n" in text
    assert text.rstrip().endswith("user facmon-collector\ntopic read facmon/v1/#\ntopic read $SYS/broker/#")
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
    with pytest.raises(ValueError, match=r"account names used twice: park\.gen-main, park\.inv-lab"):
        plan_accounts([PARK, PARK], [], {})


def test_default_readers_are_one_account_per_facmon_service() -> None:
    readers = [a for a in plan_accounts([PARK], DEFAULT_READERS, {}, make_password=lambda: "pw") if a.read_prefix]
    assert [(a.username, a.read_prefix, a.write_prefix) for a in readers] == [
        ("facmon-collector", "facmon/v1/#", None), ("facmon-rules", "facmon/v1/#", None),
        ("facmon-api", "facmon/v1/#", None)]


BAD_READERS = {
    "newline adds an ACL line": "spy\ntopic readwrite #",
    "carriage return": "spy\rtopic readwrite #",
    "colon splits the passwd entry": "a:b",
    "empty": "",
    "wildcard #": "#",
    "wildcard +": "+",
    "space": "facmon collector",
    "tab": "facmon\tcollector",
    "only blanks": "   ",
    "slash": "facmon/collector",
    "dot: the device namespace": "park.inv-main",
    "leading dash": "-collector",
    "NUL": "col\x00lector",
    "non-ASCII": "کلیکٹر",
    "65 characters": "c" * 65,
    "pattern substitution": "%u",
}


@pytest.mark.parametrize("name", list(BAD_READERS.values()), ids=list(BAD_READERS))
def test_unsafe_reader_names_are_refused_naming_the_value_and_the_rule(name: str) -> None:
    with pytest.raises(AccountNameError) as caught:
        plan_accounts([PARK], ["facmon-collector", name], {}, make_password=lambda: "pw")
    assert repr(name) in str(caught.value) and READER_NAME_RULE in str(caught.value)


@pytest.mark.parametrize("name", ["facmon-collector", "Collector_2", "c" * 64, "0probe"])
def test_safe_reader_names_are_accepted(name: str) -> None:
    [reader] = [a for a in plan_accounts([PARK], [name], {}, make_password=lambda: "pw") if a.read_prefix]
    assert reader.username == name


def test_cli_refuses_a_newline_reader_and_writes_nothing(tmp_path: Path) -> None:
    site = Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml"
    result = subprocess.run([sys.executable, "-m", "facmon", "acl", "generate", "--site", str(site), "--out",
                             str(tmp_path / "auth"), "--reader", "spy\ntopic readwrite #"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert "reader name 'spy\\ntopic readwrite #' is not allowed" in result.stderr
    assert READER_NAME_RULE in result.stderr
    assert not (tmp_path / "auth" / "acl").exists() and not (tmp_path / "auth" / "passwd").exists()


BAD_IDS = {"newline": "inv\\nmain", "trailing newline": "inv-main\\n", "colon": "inv:main", "dot": "inv.main",
           "space": "inv main", "hash": "inv#", "plus": "inv+", "slash": "inv/main", "upper case": "Inv-main",
           "empty": "", "65 characters": "i" * 65}


@pytest.mark.parametrize("device_id", list(BAD_IDS.values()), ids=list(BAD_IDS))
@pytest.mark.parametrize("which", ["site", "device"])
def test_site_files_refuse_ids_that_would_break_passwd_or_acl(tmp_path: Path, device_id: str, which: str) -> None:
    text = (Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml").read_text()
    old = "id: park\n" if which == "site" else "- id: inv-main "
    new = f'id: "{device_id}"\n' if which == "site" else f'- id: "{device_id}" '
    assert old in text
    path = tmp_path / "site.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(SiteFileError):
        load_site(path)


def test_a_site_built_without_validation_cannot_write_a_broken_line() -> None:
    broken = PARK.model_copy(update={"id": "park\ntopic readwrite #"})
    with pytest.raises(AccountNameError, match="site and device ids must match"):
        plan_accounts([broken], [], {}, make_password=lambda: "pw")
