"""`facmon keys`: create, list and revoke API keys (the key is printed once, at creation)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from api.keys import BadKeyName, KeyNotFound, KeyStore, Role
from core.clock import SystemClock
from core.config import FacmonConfig

HELP = "manage API keys: create (printed once), list, revoke"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="create a key and print it (only now)")
    create.add_argument("--name", required=True, help="who or what uses the key (shown in the audit log)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    sub.add_parser("list", help="list keys (never their secrets)")
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")


def _when(epoch_s: float | None) -> str:
    return "-" if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    path = config.api.keys_db.resolve()
    if args.keys_action != "create" and not path.exists():
        print(f"facmon keys: no key store at {path} (api.keys_db) yet; `facmon keys create` or the API's first start "
              "makes it. Another configuration? pass --config FILE", file=sys.stderr)
        return 1
    store = KeyStore(path, SystemClock())
    try:
        if args.keys_action == "create":
            try:
                key, token = store.create(args.name, Role(args.role))
            except BadKeyName as err:
                print(f"facmon keys: {err}", file=sys.stderr)
                return 2
            print(token)
            print(f"created key {key.id} ({key.role.value}) for {key.name} in {path}; it is shown only once",
                  file=sys.stderr)
        elif args.keys_action == "list":
            print(f"keys in {path}", file=sys.stderr)
            for key in store.list():
                state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
                print(f"{key.id}  {key.role.value:<8}  {_when(key.created_at)}  {state:<28}  {key.name}")
        else:
            try:
                key = store.revoke(args.key_id)
            except KeyNotFound as err:
                print(f"facmon keys: {err}", file=sys.stderr)
                return 1
            print(f"revoked {key.id} ({key.name})")
        return 0
    finally:
        store.close()
