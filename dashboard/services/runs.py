"""Queries over sync runs and their events, for the UI and the CLI (plain dicts)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from dashboard.models import Integration, SyncEvent, SyncRun


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def run_summary(run: SyncRun, integration: Integration | None) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "integration_id": str(run.integration_id),
        "integration": integration.display_name if integration else "",
        "platform": integration.platform if integration else "",
        "stream": run.stream,
        "status": run.status,
        "trigger": run.trigger,
        "records_read": run.records_read,
        "inserted": run.records_inserted,
        "updated": run.records_updated,
        "deleted": run.records_deleted,
        "skipped": run.records_skipped,
        "pages": run.pages,
        "progress": round((run.progress or 0.0) * 100),
        "has_progress": run.progress is not None,
        "rate": round(run.records_per_second or 0.0, 1),
        "error": run.error or "",
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


def list_runs(
    *,
    session: Session,
    status: str = "",
    platform: str = "",
    integration_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    statement = select(SyncRun, Integration).join(
        Integration, col(Integration.id) == col(SyncRun.integration_id)
    )
    if status:
        statement = statement.where(SyncRun.status == status)
    if platform:
        statement = statement.where(Integration.platform == platform)
    if integration_id:
        statement = statement.where(SyncRun.integration_id == integration_id)
    statement = statement.order_by(col(SyncRun.created_at).desc()).offset(offset).limit(limit)
    return [run_summary(run, integration) for run, integration in session.exec(statement).all()]


def run_events(*, session: Session, run_id: uuid.UUID, limit: int = 200) -> list[dict[str, str]]:
    rows = session.exec(
        select(SyncEvent).where(SyncEvent.run_id == run_id).order_by(col(SyncEvent.at)).limit(limit)
    ).all()
    return [{"at": _iso(e.at), "level": e.level, "message": e.message} for e in rows]
