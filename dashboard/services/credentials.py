"""Integration secrets at rest: encrypted by the vault, never returned to the UI.

``DbCredentialStore`` is what connectors see (``connectors.base.CredentialStore``); its
``refresh_lock`` keeps token refreshes to one at a time across processes: a PostgreSQL
advisory lock, or on SQLite (one machine) an exclusive file lock. Key rotation takes the same
lock per integration, so a token refreshed meanwhile is never overwritten by its re-encrypted
predecessor.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.auth import ACCESS_TOKEN
from connectors.base import StoredCredential
from connectors.ratelimit import LoopLock
from dashboard.db import get_engine, in_session
from dashboard.models import Credential
from dashboard.services.vault import CREDENTIAL_FORMAT, Vault, get_vault
from dashboard.settings import get_settings


def save_credential(
    *, session: Session, integration_id: uuid.UUID, credential: StoredCredential
) -> None:
    """Insert or replace the credential of this kind, encrypted under the newest key."""
    key_id, ciphertext = get_vault().encrypt_credential(
        credential.secret, integration_id=integration_id, kind=credential.kind
    )
    row = session.exec(
        select(Credential).where(
            Credential.integration_id == integration_id, Credential.kind == credential.kind
        )
    ).first()
    now = datetime.now(UTC)
    if row is None:
        row = Credential(
            integration_id=integration_id, kind=credential.kind, ciphertext="", key_id=""
        )
    else:
        row.refreshed_at = now
    row.key_id, row.ciphertext = key_id, ciphertext
    row.scopes = list(credential.scopes)
    row.expires_at = credential.expires_at
    session.add(row)
    session.flush()


def load_credential(
    *, session: Session, integration_id: uuid.UUID, kind: str
) -> StoredCredential | None:
    row = session.exec(
        select(Credential).where(
            Credential.integration_id == integration_id, Credential.kind == kind
        )
    ).first()
    if row is None:
        return None
    secret = get_vault().decrypt_credential(
        row.key_id, row.ciphertext, integration_id=integration_id, kind=row.kind
    )
    return StoredCredential(
        kind=row.kind, secret=secret, scopes=list(row.scopes), expires_at=row.expires_at
    )


def delete_credentials(
    *,
    session: Session,
    integration_id: uuid.UUID,
    kind: str | None = None,
    keep: tuple[str, ...] = (),
) -> int:
    """Delete the integration's credentials (of ``kind``), except the kinds in ``keep``."""
    statement = sa.delete(Credential).where(col(Credential.integration_id) == integration_id)
    if kind is not None:
        statement = statement.where(col(Credential.kind) == kind)
    if keep:
        statement = statement.where(col(Credential.kind).not_in(keep))
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult has it


def credential_summaries(*, session: Session, integration_id: uuid.UUID) -> list[dict[str, object]]:
    """What the UI may show: kind, scopes, key id, ages. Never the secret."""
    rows = session.exec(select(Credential).where(Credential.integration_id == integration_id)).all()
    return [
        {
            "kind": row.kind,
            "scopes": list(row.scopes),
            "key_id": row.key_id,
            "created_at": row.created_at,
            "refreshed_at": row.refreshed_at,
            "expires_at": row.expires_at,
        }
        for row in rows
    ]


# Per name, one asyncio lock per event loop (``LoopLock``: a process may run more than one).
_local_locks: dict[str, LoopLock] = {}


def _lock_number(name: str) -> int:
    # Advisory locks take a signed 64-bit key.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def hold_cross_process_lock(name: str) -> Iterator[None]:
    """Hold ``name`` against every other holder, blocking this thread until it is free.

    Also excludes holders in this very process: a file lock belongs to its open file and an
    advisory lock to its connection, and each holder opens its own.
    """
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            key = {"key": _lock_number(name)}
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
    else:
        lock_dir = get_settings().data_dir / "locks"
        lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = lock_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.asynccontextmanager
async def cross_process_lock(name: str) -> AsyncIterator[None]:
    """Hold ``name`` against every task of this process and every other hub process."""
    async with _local_locks.setdefault(name, LoopLock()):  # this process's tasks queue here
        held = hold_cross_process_lock(name)
        await asyncio.to_thread(held.__enter__)
        try:
            yield
        finally:
            await asyncio.to_thread(held.__exit__, None, None, None)


def refresh_lock_name(integration_id: uuid.UUID, name: str) -> str:
    return f"refresh:{integration_id}:{name}"


# The lock both connectors' TokenFlow refreshes under: key rotation must take the same one.
REFRESH_LOCK_KIND = ACCESS_TOKEN


def rotate_credentials(*, session: Session, vault: Vault, batch_size: int = 200) -> int:
    """Re-encrypt every credential not current in ``vault`` (newest key, current format);
    returns how many. Commits as it goes; raises VaultError for a row that does not decrypt.

    Each integration's rows are read and rewritten while holding its token-refresh lock, and
    read afresh once it is held: a refresh that saved a new token meanwhile is what gets
    re-encrypted, never overwritten with the old one.
    """
    stale = sa.or_(
        col(Credential.key_id) != vault.current_key_id,
        sa.not_(col(Credential.ciphertext).startswith(CREDENTIAL_FORMAT)),
    )
    rotated = 0
    while True:
        integration_ids = session.exec(
            select(Credential.integration_id).where(stale).distinct().limit(batch_size)
        ).all()
        session.commit()  # no transaction (nor SQLite snapshot) open while waiting for a lock
        if not integration_ids:
            return rotated
        for integration_id in integration_ids:
            lock = refresh_lock_name(integration_id, REFRESH_LOCK_KIND)
            with hold_cross_process_lock(lock):
                rows = session.exec(
                    select(Credential)
                    .where(Credential.integration_id == integration_id, stale)
                    .execution_options(populate_existing=True)  # not a copy read earlier
                ).all()
                for row in rows:
                    plaintext = vault.decrypt_credential(
                        row.key_id, row.ciphertext, integration_id=integration_id, kind=row.kind
                    )
                    row.key_id, row.ciphertext = vault.encrypt_credential(
                        plaintext, integration_id=integration_id, kind=row.kind
                    )
                    session.add(row)
                session.commit()
            rotated += len(rows)


class DbCredentialStore:
    """``connectors.base.CredentialStore`` for one integration, backed by the vault."""

    def __init__(self, integration_id: uuid.UUID | str) -> None:
        self.integration_id = uuid.UUID(str(integration_id))

    async def get(self, kind: str) -> StoredCredential | None:
        return await in_session(
            lambda s: load_credential(session=s, integration_id=self.integration_id, kind=kind)
        )

    async def save(self, *credentials: StoredCredential) -> None:
        def save_all(session: Session) -> None:  # one transaction: a rotated pair stays a pair
            for credential in credentials:
                save_credential(
                    session=session, integration_id=self.integration_id, credential=credential
                )

        await in_session(save_all)

    async def delete(self, kind: str) -> None:
        await in_session(
            lambda s: delete_credentials(session=s, integration_id=self.integration_id, kind=kind)
        )

    def refresh_lock(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        return cross_process_lock(refresh_lock_name(self.integration_id, name))
