"""Audit log: who did what to which target."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from dashboard.models import AuditLog


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
