"""Read-only queries behind the Overview and Integrations pages (plain dicts for the UI)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, or_, select

from dashboard.db import contains_pattern
from dashboard.models import (
    ACTIVE_RUN_STATUSES,
    Incident,
    IncidentStatus,
    Integration,
    IntegrationStatus,
    RunStatus,
    StreamConfig,
    SyncRun,
)
from dashboard.services import health, incidents, records_view

RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]


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
    health_is: str = "",
    sort: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 25,
) -> tuple[list[dict[str, Any]], int]:
    """One page of integrations and the total matching, filtered and sorted in SQL.

    ``status`` filters on the stored access status (an index); ``health_is`` on what the
    Health column shows (``health.IntegrationHealth``), which rolls up every integration's
    streams (one grouped query, ~150 ms at 10,000 integrations) unless the access status
    alone decides it.
    """
    statement = select(Integration)
    if search.strip():
        statement = statement.where(_matches(search))
    if platform:
        statement = statement.where(Integration.platform == platform)
    if status:
        statement = statement.where(Integration.status == status)
    if health_is:
        statement = statement.where(_health_is(health_is))
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
    return _integration_rows(session, rows), total


# Health values the stored status alone decides (health._integration_health_expr): their
# filter reads the status index instead of rolling up every integration's streams.
_HEALTH_BY_STATUS_ONLY = {
    health.IntegrationHealth.NEEDS_REAUTH.value: IntegrationStatus.NEEDS_REAUTH.value,
    health.IntegrationHealth.PAUSED.value: IntegrationStatus.PAUSED.value,
}


def _health_is(value: str) -> Any:
    """Integrations whose Health column shows ``value`` (an unknown value matches none)."""
    if value in _HEALTH_BY_STATUS_ONLY:
        return Integration.status == _HEALTH_BY_STATUS_ONLY[value]
    if value not in {member.value for member in health.IntegrationHealth}:
        return sa.false()
    per = health._per_integration(datetime.now(UTC), None)
    matching = (
        select(Integration.id)
        .join(per, per.c.integration_id == col(Integration.id), isouter=True)
        .where(health._integration_health_expr(per) == value)
    )
    return col(Integration.id).in_(matching)


def _integration_rows(session: Session, rows: Sequence[Integration]) -> list[dict[str, Any]]:
    """What a row of the Integrations page shows, one dict per integration.

    ``status`` is the stored access status; ``health`` is what a person should see: the
    worst of its streams' health plus its access (``health.integration_health``, one grouped
    query for the page), with ``failing_streams`` of ``streams``.
    """
    next_runs = _next_runs(session=session, ids=[row.id for row in rows])
    healths = health.integration_health(session=session, ids=[row.id for row in rows])
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
            **_health_of(healths.get(str(row.id))),
        }
        for row in rows
    ]


def _health_of(found: dict[str, Any] | None) -> dict[str, Any]:
    found = found or {"health": "", "failing_streams": 0, "streams": 0}
    return {
        "health": found["health"],
        "failing_streams": found["failing_streams"],
        "streams": found["streams"],
    }


def health_cards(*, session: Session) -> dict[str, Any]:
    """The Overview cards: every integration in exactly one bucket, so the buckets add up to
    ``total``; ``by_status`` splits them further (``health.IntegrationHealth`` values)."""
    by_status = health.health_counts(session=session)
    cards: dict[str, Any] = {
        bucket: sum(by_status[member.value] for member in members)
        for bucket, members in health.CARD_BUCKETS.items()
    }
    cards["total"] = sum(by_status.values())
    cards["by_status"] = by_status
    return cards


def attention(*, session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The Overview's attention panel and the bell: open incidents, latest seen first."""
    return incidents.list_incidents(session=session, limit=limit)


def integrations_by_id(*, session: Session, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The rows ``list_integrations`` gave for ``ids``, as they are now, in the same order
    (deleted ones left out): primary-key reads, whatever the page's filters cost."""
    if not ids:
        return []
    found = session.exec(
        select(Integration).where(col(Integration.id).in_([uuid.UUID(i) for i in ids]))
    ).all()
    by_id = {str(row.id): row for row in found}
    return _integration_rows(session, [by_id[i] for i in ids if i in by_id])


def integrations_watermark(*, session: Session) -> tuple[Any, ...]:
    """Changes whenever an integration is added, removed, changes status or syncs: how many
    there are in each status, the newest creation and the latest sync. Each part is read off
    an index (one pass over the status index, two index ends), so a live page compares it
    every tick and reads its page again only when it moved."""
    counts = tuple(sorted(status_counts(session=session).items()))
    newest, latest_sync, incident_seen, open_incidents = session.exec(
        select(
            select(func.max(Integration.created_at)).scalar_subquery(),
            select(func.max(Integration.last_sync_at)).scalar_subquery(),
            # A stream failing or recovering moves these: its integration's health changed.
            select(func.max(Incident.last_seen_at))
            .where(Incident.status == IncidentStatus.OPEN.value)
            .scalar_subquery(),
            select(func.count())
            .select_from(Incident)
            .where(Incident.status == IncidentStatus.OPEN.value)
            .scalar_subquery(),
        )
    ).one()
    return counts, _iso(newest), _iso(latest_sync), _iso(incident_seen), open_incidents


def _run_writes_query(ids: Sequence[uuid.UUID]) -> sa.Select:
    """(integration id, run id, stored so far) of the integrations' queued and running runs."""
    return sa.select(
        RUNS.c.integration_id, RUNS.c.id, RUNS.c.records_inserted - RUNS.c.records_deleted
    ).where(RUNS.c.integration_id.in_(ids), RUNS.c.status.in_(ACTIVE_RUN_STATUSES))


def active_run_writes(*, session: Session, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Each integration's queued and running runs: run id -> records it has stored so far
    (inserted minus deleted), counted in the same transaction as each batch it writes."""
    if not ids:
        return {}
    writes: dict[str, dict[str, int]] = {}
    for integration_id, run_id, stored in session.execute(
        _run_writes_query([uuid.UUID(i) for i in ids])
    ):
        writes.setdefault(str(integration_id), {})[str(run_id)] = int(stored)
    return writes


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


def _stored_and_run_writes(
    *, session: Session, ids: Sequence[str]
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Each integration's stored records and its active runs' stored-so-far
    (``active_run_writes``), in one statement: one snapshot on PostgreSQL and on SQLite."""
    uuids = [uuid.UUID(i) for i in ids]
    per_table = records_view.stored_records(uuids).subquery()
    records = sa.select(
        per_table.c.integration_id,
        sa.type_coerce(sa.null(), sa.Uuid).label("run_id"),
        sa.func.sum(per_table.c.stored).label("stored"),
    ).group_by(per_table.c.integration_id)
    counts = dict.fromkeys(ids, 0)
    writes: dict[str, dict[str, int]] = {}
    both = sa.union_all(records, _run_writes_query(uuids))
    for integration_id, run_id, stored in session.execute(both):
        if run_id is None:
            counts[str(integration_id)] = int(stored)
        else:
            writes.setdefault(str(integration_id), {})[str(run_id)] = int(stored)
    return counts, writes


# An integration's exact record count, and the stored-so-far of its syncs running then.
RecordBase = tuple[int, dict[str, int]]


def live_record_counts(
    *, session: Session, ids: Sequence[str], bases: dict[str, RecordBase]
) -> tuple[dict[str, int], dict[str, RecordBase]]:
    """Stored records of each integration, for a page that refreshes every tick.

    An integration is counted exactly (``_stored_and_run_writes``) when first shown and whenever
    its set of running syncs changes (one starts or ends). In between, its count is that
    exact count plus what each running sync has stored since, read off the run rows that the
    sync engine updates with every batch: no record table is read while a sync runs.
    Returns the counts and the bases to pass next time.

    The count and the counters it starts from are read by one statement, so as of one
    moment: read by two, a batch committed in between (records and counters in one
    transaction) was in the counters but not in the count, and missing from the count shown
    for as long as its run lasted.
    """
    active = active_run_writes(session=session, ids=ids)
    stale = [i for i in ids if i not in bases or bases[i][1].keys() != active.get(i, {}).keys()]
    fresh = {i: bases[i] for i in ids if i not in stale}
    if stale:
        counts, writes = _stored_and_run_writes(session=session, ids=stale)
        for integration_id in stale:
            active[integration_id] = writes.get(integration_id, {})
            fresh[integration_id] = (counts[integration_id], active[integration_id])
    shown = {
        integration_id: base
        + sum(
            stored - at_base.get(run, 0) for run, stored in active.get(integration_id, {}).items()
        )
        for integration_id, (base, at_base) in fresh.items()
    }
    return shown, fresh
