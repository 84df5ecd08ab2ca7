"""Backups the hub can restore, and restores that prove themselves.

``create_backup`` writes a consistent snapshot of the database while the hub serves and
syncs: SQLite's online backup API (``sqlite3.Connection.backup``: one read transaction, every
page as of one moment) or ``pg_dump -Fc`` inside a repeatable-read transaction whose snapshot
it exports, so the row counts in the manifest are exactly the dump's. Beside the dump,
``manifest.json`` holds the schema revision, the row count of every table, the dump's
SHA-256 and the key ids (with fingerprints) its credentials need. Keys are exported only when
asked, into a separate 0600 file.

``restore_backup`` refuses a snapshot from a newer schema or a database that is not empty,
restores, migrates, and verifies: every table's row count equals the manifest's and every
credential decrypts with the keys configured here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection

from dashboard import migrations
from dashboard.data_dir import PRIVATE_DIR_MODE, create_private_file
from dashboard.db import get_engine, reset_engines

MANIFEST = "manifest.json"
KEYS_FILE = "keys.secret"
SQLITE_DUMP = "hub.sqlite3"
POSTGRES_DUMP = "hub.pgdump"
FORMAT = 1
_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass
class BackupResult:
    directory: Path
    manifest: dict[str, Any]


@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    revision: str | None
    counts: dict[str, int] = field(default_factory=dict)
    count_mismatches: list[str] = field(default_factory=list)
    credentials: int = 0
    credential_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.count_mismatches and not self.credential_problems


# --- backup -------------------------------------------------------------------------------


def create_backup(*, destination: Path, with_keys: bool = False) -> BackupResult:
    """Snapshot the configured database into ``destination`` (created 0700; it must not
    exist or be empty). Raises BackupError."""
    from dashboard.services.vault import get_vault

    destination = destination.resolve()
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: back up into a new directory")
    destination.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    destination.chmod(PRIVATE_DIR_MODE)
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        dump = destination / SQLITE_DUMP
        facts = _backup_sqlite(_sqlite_path(engine.url), dump)
    else:
        dump = destination / POSTGRES_DUMP
        facts = _backup_postgres(engine, dump)
    dump.chmod(0o600)
    needed = facts["credentials_by_key"]
    vault = get_vault()
    keys = [
        {
            "key_id": key_id,
            "fingerprint": facts["fingerprints"].get(key_id) or vault.fingerprints.get(key_id),
            "credentials": count,
            "configured_here": key_id in vault.key_ids,
        }
        for key_id, count in sorted(needed.items())
    ]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "database": engine.dialect.name,
        "schema_revision": facts["revision"],
        "tables": facts["counts"],
        "files": {dump.name: {"sha256": file_sha256(dump), "bytes": dump.stat().st_size}},
        "keys": keys,
        "keys_file": None,
    }
    if with_keys:
        missing = [key_id for key_id in needed if key_id not in vault.key_ids]
        if missing:
            raise BackupError(
                f"the snapshot's credentials need key(s) {', '.join(missing)}, which are not "
                "configured here: add them to HUB_ENCRYPTION_KEYS to export them"
            )
        wanted = list(needed) or vault.key_ids
        create_private_file(destination / KEYS_FILE, vault.key_spec(wanted) + "\n")
        manifest["keys_file"] = KEYS_FILE
    # Written last: a directory without a manifest is an unfinished backup.
    create_private_file(destination / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return BackupResult(destination, manifest)


def _sqlite_path(url: sa.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _backup_sqlite(source_path: Path, dump: Path) -> dict[str, Any]:
    source = sqlite3.connect(source_path, timeout=30)
    target = sqlite3.connect(dump)
    try:
        source.backup(target)  # every page in one step: one consistent read transaction
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
        source.close()
    snapshot = sa.create_engine(f"sqlite:///{dump}")
    try:
        with snapshot.connect() as connection:
            return _facts(connection)
    finally:
        snapshot.dispose()


def _backup_postgres(engine: sa.Engine, dump: Path) -> dict[str, Any]:
    pg_dump = _client_tool("pg_dump", engine)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            # pg_dump reads this very snapshot: the counts below are the dump's.
            snapshot = connection.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            facts = _facts(connection)
            command = [pg_dump, "-Fc", "--no-owner", "--snapshot", str(snapshot), "-f", str(dump)]
            _run_client(command + _libpq_args(engine), engine, "pg_dump")
    return facts


def _facts(connection: Connection) -> dict[str, Any]:
    """Row counts, schema revision, key ids and fingerprints of one database state."""
    inspector = sa.inspect(connection)
    tables = sorted(inspector.get_table_names())
    counts = {
        name: int(
            connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
        )
        for name in tables
    }
    revision = None
    if "alembic_version" in tables:
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    credentials_by_key: dict[str, int] = {}
    if "credentials" in tables:
        rows = connection.execute(
            sa.text("SELECT key_id, count(*) FROM credentials GROUP BY key_id")
        ).all()
        credentials_by_key = {str(key_id): int(count) for key_id, count in rows}
    fingerprints: dict[str, str] = {}
    if "encryption_keys" in tables:
        rows = connection.execute(sa.text("SELECT key_id, fingerprint FROM encryption_keys")).all()
        fingerprints = {str(key_id): str(fingerprint) for key_id, fingerprint in rows}
    return {
        "counts": counts,
        "revision": revision,
        "credentials_by_key": credentials_by_key,
        "fingerprints": fingerprints,
    }


# --- PostgreSQL client tools ---------------------------------------------------------------


def _libpq_args(engine: sa.Engine) -> list[str]:
    """Connection options for pg_dump/pg_restore; the password goes in PGPASSWORD, never in
    the command line (which other users of the host can read)."""
    url = engine.url
    args = ["--dbname", str(url.database)]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    return args


def _run_client(command: list[str], engine: sa.Engine, tool: str) -> None:
    env = dict(os.environ)
    if engine.url.password:
        env["PGPASSWORD"] = str(engine.url.password)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")


def _client_tool(tool: str, engine: sa.Engine) -> str:
    """The path of pg_dump/pg_restore, refused when older than the server (an older pg_dump
    refuses a newer server's data, or worse, misses what it does not know)."""
    path = shutil.which(tool)
    if path is None:
        raise BackupError(
            f"{tool} is not installed: install the PostgreSQL client (same major "
            "version as the server, e.g. postgresql-client-15)"
        )
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    match = re.search(r"(\d+)\.", version.stdout)
    with engine.connect() as connection:
        server = int(connection.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    if match is None or int(match.group(1)) < server:
        raise BackupError(
            f"{tool} {match.group(1) if match else '?'} is older than the PostgreSQL {server} "
            f"server: install postgresql-client-{server}"
        )
    return path


# --- restore ------------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    """The snapshot's manifest, its files checked against their checksums."""
    path = source / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"{source} holds no {MANIFEST}: not a hub backup, or unfinished"
        ) from None
    except ValueError as error:
        raise BackupError(f"{path} is not valid JSON ({error})") from None
    if int(manifest.get("format", 0)) > FORMAT:
        raise BackupError(
            f"{source} was written by a newer hub (backup format "
            f"{manifest['format']}): restore it with that version"
        )
    for name, expected in manifest.get("files", {}).items():
        file = source / name
        if not file.exists():
            raise BackupError(f"{file} is missing from the backup")
        if file_sha256(file) != expected["sha256"]:
            raise BackupError(f"{file} does not match the manifest's checksum: the copy is damaged")
    return manifest


def _check_revision(manifest: dict[str, Any]) -> None:
    revision = manifest.get("schema_revision")
    if revision is None:
        return
    scripts = ScriptDirectory.from_config(migrations.alembic_config())
    try:
        known = scripts.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(
            f"the backup's schema (revision {revision}) is newer than this hub knows "
            f"(newest {scripts.get_current_head()}): upgrade the hub, then restore"
        )


def _existing_tables() -> list[str]:
    with get_engine().connect() as connection:
        return sorted(sa.inspect(connection).get_table_names())


def restore_backup(*, source: Path) -> RestoreReport:
    """Restore the backup in ``source`` into the configured (empty) database, migrate it and
    verify it. Raises BackupError when it refuses; the report holds what did not verify."""
    source = source.resolve()
    manifest = read_manifest(source)
    _check_revision(manifest)
    engine = get_engine()
    if manifest["database"] != engine.dialect.name:
        raise BackupError(
            f"the backup is of a {manifest['database']} database and DATABASE_URL points at "
            f"{engine.dialect.name}: restore into a {manifest['database']} database"
        )
    tables = _existing_tables()
    if tables:
        shown = ", ".join(tables[:5]) + (" ..." if len(tables) > 5 else "")
        raise BackupError(
            f"the database at {engine.url.render_as_string(hide_password=True)} is not empty "
            f"({len(tables)} tables: {shown}). Restore only goes into an empty database: "
            "create a new one (or move the SQLite file away), point DATABASE_URL at it and run "
            "`hub restore` again"
        )
    if engine.dialect.name == "sqlite":
        target_path = _sqlite_path(engine.url)
        reset_engines()  # no pooled connection to the file while it is replaced
        snapshot = sqlite3.connect(source / SQLITE_DUMP)
        target = sqlite3.connect(target_path)
        try:
            snapshot.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
            snapshot.close()
    else:
        pg_restore = _client_tool("pg_restore", engine)
        command = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error"]
        _run_client(
            command + _libpq_args(engine) + [str(source / POSTGRES_DUMP)], engine, "pg_restore"
        )
        reset_engines()
    migrations.upgrade_head()
    report = RestoreReport(manifest=manifest, revision=migrations.current_revision())
    _release_runtime_claims()
    _verify_counts(report)
    _verify_credentials(report)
    return report


def _release_runtime_claims() -> None:
    """What the processes of the backed-up hub held is not held by anyone here: runs that
    were running get no heartbeat (the next hub's crash recovery interrupts them and resumes
    each from its checkpoint), queued runs lose their owner (any hub adopts them) and the
    scheduler lease expires. Updates only: the row counts stay the manifest's."""
    from dashboard.models import RunStatus, SchedulerLease, SyncRun

    runs, leases = SyncRun.__table__, SchedulerLease.__table__  # type: ignore[attr-defined]
    with get_engine().begin() as connection:
        connection.execute(
            sa.update(runs)
            .where(runs.c.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=None)
        )
        connection.execute(
            sa.update(runs).where(runs.c.status == RunStatus.QUEUED.value).values(worker=None)
        )
        connection.execute(sa.update(leases).values(expires_at=datetime.now(UTC)))


def _verify_counts(report: RestoreReport) -> None:
    with get_engine().connect() as connection:
        present = set(sa.inspect(connection).get_table_names())
        for name, expected in sorted(report.manifest["tables"].items()):
            if name not in present:
                report.count_mismatches.append(f"{name}: missing after restore")
                continue
            found = int(
                connection.execute(
                    sa.select(sa.func.count()).select_from(sa.table(name))
                ).scalar_one()
            )
            report.counts[name] = found
            if found != expected:
                report.count_mismatches.append(f"{name}: {found} rows, the backup has {expected}")


def _verify_credentials(report: RestoreReport) -> None:
    from sqlmodel import Session, select

    from dashboard.models import Credential
    from dashboard.services.vault import VaultError, get_vault, key_problems

    vault = get_vault()
    with Session(get_engine()) as session:
        report.credential_problems += key_problems(session=session, vault=vault, register=True)
        for row in session.exec(select(Credential)).all():
            report.credentials += 1
            try:
                vault.decrypt_credential(
                    row.key_id, row.ciphertext, integration_id=row.integration_id, kind=row.kind
                )
            except VaultError as error:
                report.credential_problems.append(
                    f"{row.kind} of integration {row.integration_id}: {error}"
                )
        session.commit()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
