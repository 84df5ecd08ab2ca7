"""`hub keys` (the encryption keys: generate, rotate, status) and `hub amazon` (the Amazon app's
LWA client secret: its age, its rotation)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dashboard.settings import get_settings


def cmd_keys_generate(_: argparse.Namespace) -> int:
    from dashboard.services.vault import generate_key_spec

    print(generate_key_spec())
    return 0


def cmd_keys_rotate(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.audit import record_audit
    from dashboard.services.vault import get_vault

    vault = get_vault()
    with session_scope() as session:
        count = vault.rotate(session=session)
        record_audit(
            session=session,
            actor="cli",
            action="keys.rotate",
            context={"key_id": vault.current_key_id, "credentials": count},
        )
    print(
        f"re-encrypted {count} secret(s) (credentials, sealed buyer data, the Amazon app "
        f"secret) under key {vault.current_key_id}"
    )
    return 0


def cmd_keys_status(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.vault import get_vault, key_problems, stored_key_fingerprints

    vault = get_vault()
    with session_scope() as session:
        usage = vault.key_usage(session=session)
        recorded = stored_key_fingerprints(session=session)
        problems = key_problems(session=session, vault=vault)
    mismatched = {key_id for key_id in vault.key_ids if any(repr(key_id) in p for p in problems)}
    for key_id, count in usage.items():
        if key_id in mismatched:
            marker = "MISMATCH: not the database's key under this id"
        elif key_id not in vault.key_ids:
            marker = "missing!"
        else:
            marker = "newest" if key_id == vault.current_key_id else "old"
        fingerprint = vault.fingerprints.get(key_id) or recorded.get(key_id, "?")
        print(f"{key_id:24} {fingerprint:16} {count:8} secret(s)  {marker}")
    for problem in problems:
        print(f"hub: {problem}", file=sys.stderr)
    return 1 if problems or any(k not in vault.key_ids for k, n in usage.items() if n) else 0


ROTATION_STEPS = """Rotating the Amazon app's LWA client secret (every 180 days, no downtime):
  1. Solution Provider Portal (or Seller Central -> Apps and Services -> Develop Apps), as the
     primary account user: the app's LWA credentials -> View -> Rotate secret. Amazon keeps the
     old secret working for seven days.
  2. In every hub process's environment: HUB_AMAZON_CLIENT_SECRET=<the new secret> and
     HUB_AMAZON_CLIENT_SECRET_PREVIOUS=<the old one>; restart them one by one. A token call
     refused with invalid_client is retried with the previous secret meanwhile.
  3. Run `hub amazon rotate-secret` again: it records today as the new secret's start (or
     --set-at YYYY-MM-DD when it was generated earlier); the incident resolves at the next sweep.
  4. Within the seven days: remove HUB_AMAZON_CLIENT_SECRET_PREVIOUS and restart.
Or, instead of steps 2-4: an admin enters the new secret in Settings -> Amazon app (kept
encrypted, no restart; the old one stays the fallback until they confirm the switch).
Details: docs/amazon.md, "Rotating the LWA client secret"."""


def _print_secret_status(status: object) -> None:
    from dashboard.services.amazon_lifecycle import SecretStatus

    assert isinstance(status, SecretStatus)
    print(
        f"LWA client secret {status.fingerprint}: set {status.set_at:%Y-%m-%d}, rotate by "
        f"{status.deadline:%Y-%m-%d} ({status.days_left()} days left)"
        + ("; entered in Settings" if status.from_settings else "")
        + ("; the switch is not confirmed yet" if status.switch_pending else "")
        + (
            "; HUB_AMAZON_CLIENT_SECRET_PREVIOUS is set"
            if status.previous_configured and not status.from_settings
            else ""
        )
    )


def cmd_amazon_secret_status(_: argparse.Namespace) -> int:
    from dashboard.db import session_scope
    from dashboard.services.amazon_lifecycle import secret_status

    with session_scope() as session:
        status = secret_status(session=session)
        if status is None:
            print("hub: HUB_AMAZON_CLIENT_SECRET is not set", file=sys.stderr)
            return 1
        _print_secret_status(status)
        return 0 if status.days_left() > get_settings().amazon_secret_warning_days else 1


def cmd_amazon_rotate_secret(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from dashboard.db import session_scope
    from dashboard.services.amazon_lifecycle import record_secret, secret_status
    from dashboard.services.audit import record_audit

    print(ROTATION_STEPS)
    secret = get_settings().amazon_client_secret
    if not secret:
        print("hub: HUB_AMAZON_CLIENT_SECRET is not set", file=sys.stderr)
        return 1
    set_at = None
    if args.set_at:
        try:
            set_at = datetime.strptime(args.set_at, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            print("hub: --set-at takes a date, YYYY-MM-DD", file=sys.stderr)
            return 2
    with session_scope() as session:
        row = record_secret(session=session, secret=secret, set_at=set_at)
        record_audit(
            session=session, actor="cli", action="amazon.secret_recorded",
            context={"fingerprint": row.fingerprint, "set_at": row.set_at.isoformat()},
        )  # fmt: skip
        status = secret_status(session=session)
        print()
        _print_secret_status(status)
    return 0


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="keys", required=True)
    keys.add_parser("generate", help="print a new key for HUB_ENCRYPTION_KEYS").set_defaults(
        func=cmd_keys_generate
    )
    keys.add_parser("rotate", help="re-encrypt every credential under the newest key").set_defaults(
        func=cmd_keys_rotate
    )
    keys.add_parser("status", help="which key protects how many credentials").set_defaults(
        func=cmd_keys_status
    )

    amazon = sub.add_parser("amazon", help="the Amazon app's credentials").add_subparsers(
        dest="amazon", required=True
    )
    amazon.add_parser(
        "secret-status", help="when the LWA client secret was set and must be rotated by"
    ).set_defaults(func=cmd_amazon_secret_status)
    rotate_secret = amazon.add_parser(
        "rotate-secret",
        help="the steps to rotate the LWA client secret; records the configured one as new",
    )
    rotate_secret.add_argument(
        "--set-at", default=None, help="the date the secret was generated (YYYY-MM-DD)"
    )
    rotate_secret.set_defaults(func=cmd_amazon_rotate_secret)
