"""Pending integrations nobody connected: found, labelled and discarded together."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from dashboard.models import ConnectLink, Integration, IntegrationStatus, User
from dashboard.services.audit import record_audit


def _now() -> datetime:
    return datetime.now(UTC)


# A pending integration older than this without consent was most likely abandoned (a wizard
# left half-way, a merchant who never answered): the Integrations page says so and a manager
# discards them together. One with a connect link still usable is not stale: the merchant may
# still answer, and discarding it would break the link in their hands.
STALE_PENDING_AFTER = timedelta(days=1)


def _stale_pending(now: datetime) -> list[sa.ColumnElement[bool]]:
    usable_link = (
        select(ConnectLink.id)
        .where(
            col(ConnectLink.integration_id) == col(Integration.id),
            col(ConnectLink.used_at).is_(None),
            col(ConnectLink.revoked_at).is_(None),
            col(ConnectLink.declined_at).is_(None),
            col(ConnectLink.expires_at) > now,
        )
        .correlate(Integration)
        .exists()
    )
    return [
        col(Integration.status) == IntegrationStatus.PENDING.value,
        col(Integration.connected_at).is_(None),
        col(Integration.created_at) < now - STALE_PENDING_AFTER,
        ~usable_link,
    ]


def never_connected_label(created_at: datetime, now: datetime | None = None) -> str:
    """How a stale pending integration is shown: "Never connected · 3 days"."""
    days = max(1, ((now or _now()) - created_at).days)
    return f"Never connected \u00b7 {days} day{'' if days == 1 else 's'}"


def stale_pending_count(*, session: Session) -> int:
    """How many pending integrations are stale (off ix_integrations_status_created)."""
    statement = select(func.count()).select_from(Integration).where(*_stale_pending(_now()))
    return int(session.exec(statement).one())


def stale_pending_labels(*, session: Session, ids: Iterable[str]) -> dict[str, str]:
    """For the stale ones among ``ids``: id -> "Never connected · N days"."""
    wanted = [uuid.UUID(i) for i in ids]
    if not wanted:
        return {}
    now = _now()
    rows = session.exec(
        select(Integration.id, Integration.created_at).where(
            col(Integration.id).in_(wanted), *_stale_pending(now)
        )
    ).all()
    return {str(row_id): never_connected_label(created, now) for row_id, created in rows}


def discard_stale_pending(*, session: Session, actor: User) -> int:
    """Delete every stale pending integration (they have no tokens, runs or records) with
    their stream configs and dead links, in one audited step; returns how many."""
    now = _now()
    stale = session.exec(
        select(Integration.id, Integration.display_name).where(*_stale_pending(now))
    ).all()
    if not stale:
        return 0
    ids = [row_id for row_id, _ in stale]
    # The same conditions again in the DELETE: one connected meanwhile is kept.
    deleted = session.execute(
        sa.delete(Integration).where(col(Integration.id).in_(ids), *_stale_pending(now))
    )
    count = int(deleted.rowcount or 0)  # type: ignore[attr-defined]
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.discard_stale",
        target=f"{count} integrations",
        context={"ids": [str(i) for i in ids], "names": [name for _, name in stale]},
    )
    return count
