"""`hub apikeys`: create, list and revoke the Hub API's keys (as Settings -> API keys does)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from dashboard.db import session_scope
from dashboard.services import api_keys
from dashboard.services.changefeed import API_KEYS, tell_the_hub


def _fail(message: str, code: int = 2) -> int:
    print(f"hub: {message}", file=sys.stderr)
    return code


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_create(args: argparse.Namespace) -> int:
    try:
        with session_scope() as session:
            row, key = api_keys.create_api_key(
                session=session, name=args.name, scopes=args.scope, actor=_actor(),
                integration_ids=args.integration, rate_limit_per_minute=args.rate_limit,
            )  # fmt: skip
    except api_keys.ApiKeyInvalid as error:
        return _fail(str(error))
    print(f"API key {row.prefix} ({row.name}) created; it is shown only now:", file=sys.stderr)
    print(key)  # alone on stdout, for `KEY=$(hub apikeys create ...)`
    return 0


def _row(key: Any) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "prefix": key.prefix,
        "name": key.name,
        "scopes": key.scopes,
        "integrations": key.integration_ids or "all",
        "rate_limit_per_minute": key.rate_limit_per_minute,
        "created_by": key.created_by,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def cmd_list(args: argparse.Namespace) -> int:
    with session_scope() as session:
        rows = [_row(k) for k in api_keys.list_api_keys(session=session)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no API keys; create one with `hub apikeys create --name ... --scope ...`")
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        used = row["last_used_at"] or "never used"
        print(f"{row['prefix']}  {row['name']:20} {','.join(row['scopes']):60} {state}, {used}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    with session_scope() as session:
        key = api_keys.find_api_key(session=session, key_id_or_prefix=args.key)
        if key is None:
            return _fail(f"no API key {args.key!r} (see `hub apikeys list`)")
        api_keys.revoke_api_key(session=session, key_id=key.id, actor=_actor())
        print(f"API key {key.prefix} ({key.name}) revoked")
    # The hub's workers forget the key they had checked now, not within their cache's 5 s.
    asyncio.run(tell_the_hub(API_KEYS))
    return 0


def register(sub: Any) -> None:
    apikeys = sub.add_parser(
        "apikeys", help="keys of the Hub API (/api/v1): create, list, revoke"
    ).add_subparsers(dest="apikeys", required=True)
    create = apikeys.add_parser(
        "create",
        help="a new key, printed once (only its hash is stored)",
        description="Scopes: " + ", ".join(api_keys.SCOPES) + ". Without --integration the "
        "key reaches every integration.",
    )
    create.add_argument("--name", required=True, help="who or what uses it")
    create.add_argument(
        "--scope", action="append", required=True, choices=api_keys.SCOPES, help="repeatable"
    )
    create.add_argument(
        "--integration", action="append", default=[], help="limit to this integration id "
        "(repeatable)",
    )  # fmt: skip
    create.add_argument(
        "--rate-limit", type=int, default=api_keys.DEFAULT_RATE_LIMIT,
        help=f"requests per minute (default {api_keys.DEFAULT_RATE_LIMIT})",
    )  # fmt: skip
    create.set_defaults(func=cmd_create)
    listing = apikeys.add_parser("list", help="every key, revoked ones included")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    revoke = apikeys.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key", help="its prefix (as listed) or id")
    revoke.set_defaults(func=cmd_revoke)
