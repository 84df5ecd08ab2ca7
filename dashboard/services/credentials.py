"""Integration secrets at rest: encrypted by the vault, never returned to the UI.

``DbCredentialStore`` is what connectors see (``connectors.base.CredentialStore``); its
``refresh_lock`` keeps token refreshes to one at a time across processes: a PostgreSQL
advisory lock, or on SQLite (one machine) an exclusive file lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.base import StoredCredential
from dashboard.db import get_engine, in_session
from dashboard.models import Credential
from dashboard.services.vault import get_vault
from dashboard.settings import get_settings


def save_credential(
    *, session: Session, integration_id: uuid.UUID, credential: StoredCredential
) -> None:
    """Insert or replace the credential of this kind, encrypted under the newest key."""
    key_id, ciphertext = get_vault().encrypt(credential.secret, associated_data=str(integration_id))
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
    secret = get_vault().decrypt(row.key_id, row.ciphertext, associated_data=str(integration_id))
    return StoredCredential(
        kind=row.kind, secret=secret, scopes=list(row.scopes), expires_at=row.expires_at
    )


def delete_credentials(
    *, session: Session, integration_id: uuid.UUID, kind: str | None = None
) -> int:
    statement = sa.delete(Credential).where(col(Credential.integration_id) == integration_id)
    if kind is not None:
        statement = statement.where(col(Credential.kind) == kind)
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


_local_locks: dict[str, asyncio.Lock] = {}


def _lock_number(name: str) -> int:
    # Advisory locks take a signed 64-bit key.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.asynccontextmanager
async def cross_process_lock(name: str) -> AsyncIterator[None]:
    """Hold ``name`` against every task of this process and every other hub process."""
    local = _local_locks.setdefault(name, asyncio.Lock())
    async with local:
        engine = get_engine()
        if engine.dialect.name == "postgresql":
            connection = await asyncio.to_thread(engine.connect)
            try:
                await asyncio.to_thread(
                    connection.execute,
                    sa.text("SELECT pg_advisory_lock(:key)"),
                    {"key": _lock_number(name)},
                )
                try:
                    yield
                finally:
                    await asyncio.to_thread(
                        connection.execute,
                        sa.text("SELECT pg_advisory_unlock(:key)"),
                        {"key": _lock_number(name)},
                    )
            finally:
                await asyncio.to_thread(connection.close)
        else:
            lock_dir = get_settings().data_dir / "locks"
            lock_dir.mkdir(parents=True, exist_ok=True)
            path = lock_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
            handle = await asyncio.to_thread(open, path, "a+")
            try:
                await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()


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
        return cross_process_lock(f"refresh:{self.integration_id}:{name}")
