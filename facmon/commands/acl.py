"""`facmon acl generate`: Mosquitto credentials and ACL for every device of the site descriptions.

    facmon acl generate --site deploy/sites/park.yaml --out /etc/mosquitto/facmon   (default --site: sites.files)

writes into --out:

    passwd            Mosquitto password file (PBKDF2-SHA512, the `$7$` format of mosquitto_passwd 2.x)
    acl               Mosquitto ACL file
    credentials.yaml  the plain passwords, mode 0600, to configure each device (keep it secret)

Accounts: one per device, named `{site}.{device}` (ids cannot contain a dot, so names never clash),
allowed to *write* only under its own `facmon/v1/{site}/{kind}/{device}/#` (its readings, its
retained status and its last will) and to read nothing; and one per reader (`--reader`, repeatable;
default facmon-collector, facmon-rules and facmon-api: one account per facmon service), allowed to
read `facmon/v1/#`. A reader name is 1-64 of A-Z a-z 0-9 _ - starting with a letter or digit (no dot,
so it never clashes with a device); anything else is refused (`AccountNameError`). Anonymous clients
match no ACL line and the shipped mosquitto.conf sets `allow_anonymous false`; it also sets
`use_username_as_clientid true`, so each account is one client: give every running client its own.

Running it again keeps every existing password (devices keep working) and adds accounts for new
devices; `--rotate USER` gives that account a new password. Accounts of removed devices disappear.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.config import FacmonConfig
from core.contract import ID_PATTERN, TOPIC_PREFIX
from core.files import write_atomically
from core.site import Site, SiteFileError, iter_devices, load_site
from core.yaml_limits import load_yaml

HELP = "generate Mosquitto device credentials and the ACL file from site descriptions"

PBKDF2_ITERATIONS = 101  # mosquitto_passwd 2.0's own default for the $7$ format
SALT_BYTES = 12
BROKER_COUNTERS = "$SYS/broker/#"
DEFAULT_READERS = ("facmon-collector", "facmon-rules", "facmon-api")
"""One account per facmon service (the broker binds client ids to usernames: they cannot share one)."""
READER_NAME_RULE = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or a digit"
_READER_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_DEVICE_USERNAME_RE = re.compile(rf"\A{ID_PATTERN}\.{ID_PATTERN}\Z")
_WRITE_PREFIX_RE = re.compile(rf"\A{re.escape(TOPIC_PREFIX)}/{ID_PATTERN}/[a-z]+/{ID_PATTERN}/#\Z")


class CredentialsFileError(ValueError):
    """The existing credentials.yaml cannot be read back."""


class AccountNameError(ValueError):
    """A reader name (or, from a site built without validation, a device account or topic) that would
    corrupt the passwd or ACL file: a newline adds ACL lines, a colon splits the passwd entry."""


def check_reader_name(name: str) -> str:
    """`name` if it is a safe reader account name (`READER_NAME_RULE`), else `AccountNameError`."""
    if not _READER_NAME_RE.match(name):
        raise AccountNameError(f"reader name {name!r} is not allowed: a reader name is {READER_NAME_RULE} "
                               "(no spaces, newlines, ':', '.', '#', '+' or '/')")
    return name


def _check_device_account(username: str, write_prefix: str) -> None:
    # Site files are validated (ids match ID_PATTERN) before they get here; a Site built in code
    # without validation must not write a broken passwd or ACL line either.
    if not _DEVICE_USERNAME_RE.match(username) or not _WRITE_PREFIX_RE.match(write_prefix):
        raise AccountNameError(f"device account {username!r} (topic {write_prefix!r}) is not allowed: site and "
                               f"device ids must match {ID_PATTERN}")


@dataclass(frozen=True)
class Account:
    """A broker login. `write_prefix` set: a device; `read_prefix` set: a reader (collector...)."""

    username: str
    password: str
    write_prefix: str | None = None
    read_prefix: str | None = None


def device_username(site: Site, device_id: str) -> str:
    return f"{site.id}.{device_id}"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def plan_accounts(sites: Iterable[Site], readers: Iterable[str], existing: Mapping[str, str],
                  rotate: Iterable[str] = (), make_password: Callable[[], str] = new_password) -> list[Account]:
    """Every account, devices in site-file order then readers; existing passwords kept unless rotated.

    Raises `AccountNameError` for an unsafe reader name (or device id), ValueError for a name used twice."""
    rotate = set(rotate)
    readers = [check_reader_name(reader) for reader in readers]

    def password(username: str) -> str:
        return existing[username] if username in existing and username not in rotate else make_password()

    accounts = []
    for site in sites:
        for device in iter_devices(site):
            username = device_username(site, device.id)
            prefix = f"{TOPIC_PREFIX}/{site.id}/{device.kind.value}/{device.id}/#"
            _check_device_account(username, prefix)
            accounts.append(Account(username, password(username), write_prefix=prefix))
    for reader in readers:
        accounts.append(Account(reader, password(reader), read_prefix=f"{TOPIC_PREFIX}/#"))
    names = [a.username for a in accounts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"account names used twice: {', '.join(duplicates)} (two site files with the same id?)")
    return accounts


def hash_password(password: str, salt: bytes) -> str:
    """Mosquitto's `$7$` hash: PBKDF2-HMAC-SHA512, base64 salt and digest."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_file(accounts: Iterable[Account], make_salt: Callable[[int], bytes] = os.urandom) -> str:
    return "".join(f"{a.username}:{hash_password(a.password, make_salt(SALT_BYTES))}\n" for a in accounts)


def acl_file(accounts: Iterable[Account]) -> str:
    lines = ["# Generated by `facmon acl generate`; edit the site files and run it again instead.",
             "# No topic line precedes the first `user`, so anonymous clients may do nothing.", ""]
    for account in accounts:
        lines.append(f"user {account.username}")
        if account.write_prefix:
            lines.append(f"topic write {account.write_prefix}")
        if account.read_prefix:
            lines.append(f"topic read {account.read_prefix}")
            # The broker's own counters: the rules engine watches its queue (rules.broker_watch).
            lines.append(f"topic read {BROKER_COUNTERS}")
        lines.append("")
    return "\n".join(lines)


def credentials_yaml(accounts: Iterable[Account]) -> str:
    return ("# Broker logins generated by `facmon acl generate`. SECRET: give each device its own line only.\n"
            + yaml.safe_dump({a.username: a.password for a in accounts}, sort_keys=False))


def read_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), what="credentials file") or {}
    except (OSError, yaml.YAMLError) as err:
        raise CredentialsFileError(f"{path}: cannot read the existing credentials ({err}); fix or remove it "
                                   "(removing it gives every device a new password)") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise CredentialsFileError(f"{path}: expected `username: password` lines")
    return data


def generate(sites: list[Site], out_dir: Path, readers: Iterable[str] = DEFAULT_READERS,
             rotate: Iterable[str] = ()) -> list[Account]:
    """Write passwd, acl and credentials.yaml into `out_dir`; returns the accounts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    accounts = plan_accounts(sites, readers, read_credentials(out_dir / "credentials.yaml"), rotate)
    write_atomically(out_dir / "credentials.yaml", credentials_yaml(accounts), 0o600)
    # Mosquitto drops privileges to its own user, which must be able to read these two.
    write_atomically(out_dir / "passwd", password_file(accounts), 0o644)
    write_atomically(out_dir / "acl", acl_file(accounts), 0o644)
    return accounts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = actions.add_parser("generate", help="write passwd, acl and credentials.yaml for Mosquitto",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("--site", type=Path, action="append", default=None,
                     help="site description (repeatable; default: sites.files)")
    gen.add_argument("--out", type=Path, required=True, help="directory for passwd, acl and credentials.yaml")
    gen.add_argument("--reader", action="append", default=None,
                     help=f"an account that may read every reading, {READER_NAME_RULE} (repeatable; "
                          f"default {', '.join(DEFAULT_READERS)})")
    gen.add_argument("--rotate", action="append", default=[], metavar="USER", help="give USER a new password")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    try:
        paths = args.site if args.site is not None else list(config.sites.files)
        if not paths:
            raise ValueError("no site to make accounts for: give --site FILE or set sites.files")
        sites = [load_site(path) for path in paths]
        accounts = generate(sites, args.out, args.reader or DEFAULT_READERS, args.rotate)
    except (SiteFileError, CredentialsFileError, ValueError) as err:
        print(f"facmon acl generate: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"facmon acl generate: cannot write {args.out}: {err.strerror}", file=sys.stderr)
        return 1
    devices = sum(1 for a in accounts if a.write_prefix)
    print(f"{args.out}: {devices} device accounts, {len(accounts) - devices} readers "
          "(passwd, acl, credentials.yaml); reload Mosquitto (SIGHUP) to apply")
    return 0
