"""`hub backup`, `hub restore`, `hub doctor`, `hub config show`: taking the hub to production
and keeping it there."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from dashboard.production_profile import production_problems
from dashboard.settings import Settings, get_settings

MASK = "********"
# A setting holding a secret, by name: app secrets, passwords, keys, tokens (metrics' too).
_SECRET_NAME = re.compile(r"secret|password|token|encryption_keys", re.IGNORECASE)


def _fail(message: str, code: int = 2) -> int:
    print(f"hub: {message}", file=sys.stderr)
    return code


# --- config show ---------------------------------------------------------------------------


def masked_value(name: str, value: Any) -> str:
    """How ``hub config show`` prints a setting: secrets as a mask, a URL's password too."""
    if value is None or value == "":
        return "(unset)"
    if _SECRET_NAME.search(name):
        return MASK
    text = str(value)
    # user:password@ in DATABASE_URL, REDIS_URL or any URL setting
    return re.sub(r"(://[^/:@]*):[^/@]*@", rf"\1:{MASK}@", text)


def effective_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, printed value, where it came from) for every setting, secrets masked."""
    given = settings.model_fields_set
    rows = []
    for name in type(settings).model_fields:
        variable = name.upper() if name in ("database_url", "redis_url") else f"HUB_{name.upper()}"
        origin = "set" if name in given else "default"
        rows.append((variable, masked_value(name, getattr(settings, name)), origin))
    return rows


def cmd_config_show(_: argparse.Namespace) -> int:
    settings = get_settings()
    for variable, value, origin in effective_settings(settings):
        print(f"{variable:36} {value}  ({origin})")
    problems = production_problems(settings)
    if problems:
        print("\nThe production profile refuses to start with this configuration:")
        for problem in problems:
            print(f"  {problem}")
    return 0


# --- backup / restore ----------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    from dashboard.services.backup import BackupError, create_backup

    try:
        result = create_backup(destination=args.to, with_keys=args.with_keys)
    except BackupError as error:
        return _fail(str(error))
    manifest = result.manifest
    rows = sum(manifest["tables"].values())
    print(
        f"backup of the {manifest['database']} database at revision "
        f"{manifest['schema_revision']} in {result.directory}: {len(manifest['tables'])} "
        f"tables, {rows} rows"
    )
    for key in manifest["keys"]:
        print(
            f"  needs key {key['key_id']} (fingerprint {key['fingerprint']}) for "
            f"{key['credentials']} credential(s)"
        )
    if manifest["keys_file"]:
        print(
            f"  keys exported to {result.directory / manifest['keys_file']} (mode 0600): keep "
            "it apart from the backup, as secret as the keys themselves"
        )
    elif manifest["keys"]:
        print("  keys not included (--with-keys exports them): keep HUB_ENCRYPTION_KEYS safe")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from dashboard.services.backup import BackupError, restore_backup

    try:
        report = restore_backup(source=args.source)
    except BackupError as error:
        return _fail(str(error))
    tables = len(report.manifest["tables"])
    print(f"restored {args.source} and migrated it to revision {report.revision}")
    if report.count_mismatches:
        print("row counts differ from the backup's manifest:")
        for line in report.count_mismatches:
            print(f"  {line}")
    else:
        print(f"row counts of all {tables} tables equal the manifest's")
    if report.credential_problems:
        keys_file = report.manifest.get("keys_file")
        hint = (
            f" (the backup's keys are in {args.source / keys_file}: "
            "set HUB_ENCRYPTION_KEYS to its content and run `hub restore` on an empty database)"
            if keys_file
            else ""
        )
        print(f"credentials that do not decrypt with the keys configured here{hint}:")
        for line in report.credential_problems:
            print(f"  {line}")
    else:
        print(f"all {report.credentials} credential(s) decrypt")
    return 0 if report.ok else 1


# --- doctor --------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from dashboard.services.doctor import format_report, run_doctor

    report = asyncio.run(run_doctor(shop=args.shop))
    print(format_report(report))
    return 1 if report.failed else 0


def register(sub: Any) -> None:
    backup = sub.add_parser(
        "backup",
        help="write a consistent snapshot of the database (while the hub runs)",
        description="SQLite: the online backup API; PostgreSQL: pg_dump -Fc. Writes the dump "
        "and manifest.json (schema revision, row counts, checksum, key ids) into a new "
        "directory (0700).",
    )
    backup.add_argument("--to", type=Path, required=True, help="a new or empty directory")
    backup.add_argument(
        "--with-keys",
        action="store_true",
        help="also export the encryption keys the snapshot needs, to keys.secret (0600)",
    )
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser(
        "restore",
        help="restore a backup into an empty database, migrate and verify it",
        description="Refuses a backup from a newer schema and a database that is not empty. "
        "Exits 1 when row counts differ from the manifest or a credential does not decrypt.",
    )
    restore.add_argument("--from", dest="source", type=Path, required=True)
    restore.set_defaults(func=cmd_restore)

    doctor = sub.add_parser(
        "doctor",
        help="go-live check: database, keys, public URL, platform apps, clock, disk, scheduler",
        description="Each line: ok, warn or fail, and what to fix. Exits 1 when one fails.",
    )
    doctor.add_argument(
        "--shop",
        default=None,
        help="a shop to ask Shopify's token endpoint (default: a connected one)",
    )
    doctor.set_defaults(func=cmd_doctor)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config", required=True
    )
    config.add_parser(
        "show", help="the effective settings, secrets masked, and what production refuses"
    ).set_defaults(func=cmd_config_show)
