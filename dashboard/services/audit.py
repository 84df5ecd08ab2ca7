"""Audit log: who did what to which target."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, func, select

from dashboard.models import AuditLog, Integration


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    context: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(actor=actor, action=action, target=target, context=context or {})
    session.add(entry)
    return entry


def list_audit(*, session: Session, limit: int = 100, offset: int = 0) -> list[AuditLog]:
    statement = select(AuditLog).order_by(col(AuditLog.at).desc()).offset(offset).limit(limit)
    return list(session.exec(statement).all())


def _integration_id(target: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(target)
    except ValueError:
        return None


def audit_page(
    *, session: Session, offset: int = 0, limit: int = 25
) -> tuple[list[dict[str, str]], int]:
    """A page of the audit log, newest first, and how many entries there are. A target that
    is an integration is named, with a link to it (one query for the page's targets); one
    since deleted keeps its id."""
    entries = list_audit(session=session, limit=limit, offset=offset)
    total = int(session.exec(select(func.count()).select_from(AuditLog)).one())
    ids = {i for i in (_integration_id(e.target) for e in entries) if i is not None}
    names = {
        str(integration_id): name
        for integration_id, name in session.exec(
            select(Integration.id, Integration.display_name).where(col(Integration.id).in_(ids))
        ).all()
    } if ids else {}  # fmt: skip
    rows = [
        {
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "target": names.get(entry.target, entry.target),
            "href": f"/integrations/{entry.target}" if entry.target in names else "",
        }
        for entry in entries
    ]
    return rows, total
