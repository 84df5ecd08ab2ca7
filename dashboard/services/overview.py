"""Read-only queries behind the Overview and Integrations pages (plain dicts for the UI)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, or_, select

from dashboard.db import contains_pattern
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


def _account(integration: Integration) -> str:
    """The shop domain, the seller id, or (before the seller connected) the region."""
    return (
        integration.shop_domain
        or integration.selling_partner_id
        or (integration.region or "").upper()
    )


def _matches(search: str) -> Any:
    """Name, shop domain or seller id contains ``search`` (case-insensitive, literally)."""
    pattern = contains_pattern(search)
    return or_(
        *[
            func.lower(func.coalesce(column, "")).like(pattern, escape="\\")
            for column in (
                Integration.display_name,
                Integration.shop_domain,
                Integration.selling_partner_id,
            )
        ]
    )


def integration_matches(*, session: Session, search: str, limit: int = 20) -> list[dict[str, str]]:
    """At most ``limit`` integrations whose name, shop or seller contains ``search``, by name:
    what a filter's search-as-you-type list shows, whatever the number of integrations."""
    if not search.strip():
        return []
    rows = session.exec(
        select(Integration)
        .where(_matches(search))
        .order_by(col(Integration.display_name), col(Integration.id))
        .limit(limit)
    ).all()
    return [{"id": str(row.id), "name": row.display_name, "account": _account(row)} for row in rows]


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
    if search.strip():
        statement = statement.where(_matches(search))
    if platform:
        statement = statement.where(Integration.platform == platform)
    if status:
        statement = statement.where(Integration.status == status)
    total = int(session.exec(select(func.count()).select_from(statement.subquery())).one())
    # Every sort ends on the primary key in the same direction, so each order matches one of
    # the integrations table's composite indexes and a page is read straight off the index.
    sort_columns = {
        "name": (Integration.display_name,),
        "status": (Integration.status, Integration.created_at),
        "last_sync": (Integration.last_sync_at,),
        "created_at": (Integration.created_at,),
    }.get(sort, (Integration.created_at,))
    order = [
        col(column).desc() if descending else col(column).asc()
        for column in (*sort_columns, Integration.id)
    ]
    rows = session.exec(statement.order_by(*order).offset(offset).limit(limit)).all()
    next_runs = _next_runs(session=session, ids=[row.id for row in rows])
    return [
        {
            "id": str(row.id),
            "platform": row.platform,
            "name": row.display_name,
            "account": _account(row),
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


def _hour_bucket(column: Any, dialect: str) -> Any:
    """SQL for the hour a timestamp falls in, as an integer (hours since the epoch, UTC)."""
    if dialect == "sqlite":
        return sa.cast(func.strftime("%s", column), sa.Integer) // 3600
    return sa.cast(func.floor(func.extract("epoch", column) / 3600), sa.Integer)


def _records_by_hour(session: Session, first: int, last: int) -> dict[int, int]:
    """Records read by runs queued in hours ``first``..``last`` (hours since the epoch)."""
    bucket = _hour_bucket(SyncRun.created_at, session.get_bind().dialect.name).label("bucket")
    rows = session.exec(
        select(bucket, func.coalesce(func.sum(SyncRun.records_read), 0))
        .where(
            col(SyncRun.created_at) >= datetime.fromtimestamp(first * 3600, UTC),
            col(SyncRun.created_at) < datetime.fromtimestamp((last + 1) * 3600, UTC),
        )
        .group_by(bucket)
    ).all()
    totals: dict[int, int] = {}
    for hour, records in rows:
        totals[int(hour)] = totals.get(int(hour), 0) + int(records)
    return totals


def _hour_rows(first: int, last: int, totals: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "hour": datetime.fromtimestamp(hour * 3600, UTC).strftime("%H:00"),
            "records": totals.get(hour, 0),
        }
        for hour in range(first, last + 1)
    ]


def records_per_hour(
    *, session: Session, hours: int = 24, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Records read by sync runs in each of the last ``hours`` hours (UTC), oldest first.

    A run counts in the hour it was queued; running runs count what they have read so far.
    Grouped in SQL over the ``sync_runs.created_at`` index.
    """
    current = int((now or datetime.now(UTC)).timestamp()) // 3600
    first = current - hours + 1
    return _hour_rows(first, current, _records_by_hour(session, first, current))


# Earlier hours, per database and window: (read at, totals). They change only while a run that
# was queued in them still reads, so live pages re-read them at most once a minute.
_EARLIER_HOURS: dict[tuple[str, int, int], tuple[float, dict[int, int]]] = {}
EARLIER_HOURS_TTL = 60.0


def live_records_per_hour(*, session: Session, hours: int = 24) -> list[dict[str, Any]]:
    """``records_per_hour`` for pages that refresh every second: the current hour is read
    each time (one hour of runs), the earlier ones at most once a minute per process."""
    current = int(time.time()) // 3600
    first = current - hours + 1
    key = (str(session.get_bind().engine.url), first, current)
    cached = _EARLIER_HOURS.get(key)
    if cached is None or time.monotonic() - cached[0] > EARLIER_HOURS_TTL:
        _EARLIER_HOURS.clear()  # one window per process is all a page needs
        cached = (time.monotonic(), _records_by_hour(session, first, current - 1))
        _EARLIER_HOURS[key] = cached
    totals = {**cached[1], **_records_by_hour(session, current, current)}
    return _hour_rows(first, current, totals)


def needs_reauth(*, session: Session, limit: int = 10) -> list[dict[str, str]]:
    """Integrations waiting for the merchant to reconnect, longest waiting first."""
    rows = session.exec(
        select(Integration)
        .where(Integration.status == IntegrationStatus.NEEDS_REAUTH.value)
        .order_by(col(Integration.updated_at), col(Integration.id))
        .limit(limit)
    ).all()
    return [
        {
            "id": str(row.id),
            "name": row.display_name,
            "account": row.shop_domain or row.selling_partner_id or "",
            "since": _iso(row.updated_at),
        }
        for row in rows
    ]
