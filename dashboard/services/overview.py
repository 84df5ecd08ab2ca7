"""Read-only queries behind the Overview and Integrations pages (plain dicts for the UI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, or_, select

from dashboard.models import Integration, IntegrationStatus, RunStatus, StreamConfig, SyncRun


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def status_counts(*, session: Session) -> dict[str, int]:
    rows = session.exec(select(Integration.status, func.count()).group_by(Integration.status)).all()
    counts = {status.value: 0 for status in IntegrationStatus}
    counts.update({status: int(count) for status, count in rows})
    return counts


def failures_since(*, session: Session, hours: int = 24) -> int:
    since = datetime.now(UTC) - timedelta(hours=hours)
    statement = (
        select(func.count())
        .select_from(SyncRun)
        .where(SyncRun.status == RunStatus.FAILED.value, col(SyncRun.created_at) >= since)
    )
    return int(session.exec(statement).one())


def list_integrations(
    *,
    session: Session,
    search: str = "",
    platform: str = "",
    status: str = "",
    sort: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 25,
) -> tuple[list[dict[str, Any]], int]:
    """One page of integrations and the total matching, filtered and sorted in SQL."""
    statement = select(Integration)
    if search:
        pattern = f"%{search.strip().lower()}%"
        statement = statement.where(
            or_(
                func.lower(Integration.display_name).like(pattern),
                func.lower(func.coalesce(Integration.shop_domain, "")).like(pattern),
                func.lower(func.coalesce(Integration.selling_partner_id, "")).like(pattern),
            )
        )
    if platform:
        statement = statement.where(Integration.platform == platform)
    if status:
        statement = statement.where(Integration.status == status)
    total = int(session.exec(select(func.count()).select_from(statement.subquery())).one())
    sort_column = {
        "name": Integration.display_name,
        "status": Integration.status,
        "last_sync": Integration.last_sync_at,
        "created_at": Integration.created_at,
    }.get(sort, Integration.created_at)
    order = col(sort_column).desc() if descending else col(sort_column).asc()
    rows = session.exec(
        statement.order_by(order, col(Integration.id)).offset(offset).limit(limit)
    ).all()
    next_runs = _next_runs(session=session, ids=[row.id for row in rows])
    return [
        {
            "id": str(row.id),
            "platform": row.platform,
            "name": row.display_name,
            "account": row.shop_domain or row.selling_partner_id or (row.region or "").upper(),
            "status": row.status,
            "last_sync": _iso(row.last_sync_at),
            "next_sync": next_runs.get(row.id, ""),
            "created_at": _iso(row.created_at),
        }
        for row in rows
    ], total


def _next_runs(*, session: Session, ids: list[Any]) -> dict[Any, str]:
    if not ids:
        return {}
    rows = session.exec(
        select(StreamConfig.integration_id, func.min(StreamConfig.next_run_at))
        .where(col(StreamConfig.integration_id).in_(ids))
        .group_by(col(StreamConfig.integration_id))
    ).all()
    return {integration_id: _iso(next_run) for integration_id, next_run in rows}
