"""Health, rolled up honestly: each stream's health, and each integration's status as the
worst of its streams' plus its access. The ONE place that decides what status a person sees.

A stream's stored health (``stream_configs.health``) is written when one of its runs ends
(``record_run_end``); the live states come from its active run: ``stalled`` when the engine
flagged it, ``waiting`` while it waits for a known rate-limit window. Everything is computed
in SQL, so the Integrations page (one page of rows) and the Overview cards (every integration
in exactly one bucket) each cost one grouped query, whatever the number of integrations.

Integration status (``IntegrationHealth``), in this order:
- access first: ``pending`` (not connected yet), ``declined`` (pending, its link declined),
  ``needs_reauth``, ``uninstalled`` (disconnected by the merchant's uninstall),
  ``disconnected``, ``paused``;
- then its enabled, unpaused streams: ``failing`` (every stream that ran failed),
  ``degraded`` (some failing, or one degraded: skipped records, interrupted), ``stalled``,
  ``waiting``, ``syncing`` (a run is active, all well), ``connected`` (all well).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from dashboard.models import (
    ACTIVE_RUN_STATUSES,
    ConnectLink,
    Incident,
    IncidentCause,
    IncidentStatus,
    Integration,
    IntegrationStatus,
    RunStatus,
    StreamConfig,
    StreamHealth,
    SyncRun,
)
from dashboard.services.incident_words import describe_failure, hhmm


class IntegrationHealth(StrEnum):
    PENDING = "pending"
    DECLINED = "declined"
    NEEDS_REAUTH = "needs_reauth"
    UNINSTALLED = "uninstalled"
    DISCONNECTED = "disconnected"
    PAUSED = "paused"
    FAILING = "failing"
    DEGRADED = "degraded"
    STALLED = "stalled"
    WAITING = "waiting"
    SYNCING = "syncing"
    CONNECTED = "connected"


# Buckets of the Overview cards: every integration status in exactly one, so they add up.
CARD_BUCKETS: dict[str, tuple[IntegrationHealth, ...]] = {
    "healthy": (IntegrationHealth.CONNECTED, IntegrationHealth.SYNCING, IntegrationHealth.WAITING),
    "attention": (
        IntegrationHealth.DEGRADED,
        IntegrationHealth.FAILING,
        IntegrationHealth.STALLED,
    ),
    "access": (
        IntegrationHealth.NEEDS_REAUTH,
        IntegrationHealth.UNINSTALLED,
        IntegrationHealth.DECLINED,
        IntegrationHealth.DISCONNECTED,
    ),
    "not_connected": (IntegrationHealth.PENDING,),
    "paused": (IntegrationHealth.PAUSED,),
}

# Worst first: an integration with a stalled stream and a waiting one is "stalled".
_RANK = {
    StreamHealth.FAILING.value: 6,
    StreamHealth.STALLED.value: 5,
    StreamHealth.DEGRADED.value: 4,
    StreamHealth.WAITING.value: 3,
    StreamHealth.HEALTHY.value: 1,
    StreamHealth.NEVER_RUN.value: 0,
}


# --- writing: a run ended ----------------------------------------------------------------------


def record_run_end(
    *, session: Session, config: StreamConfig, status: RunStatus | str, error: str | None
) -> None:
    """A run of the stream ended: its stored health, cause and counters follow."""
    status = RunStatus(status)
    now = datetime.now(UTC)
    if status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        config.health = (
            StreamHealth.HEALTHY.value
            if status == RunStatus.SUCCEEDED
            else StreamHealth.DEGRADED.value
        )
        config.last_success_at = now
        config.consecutive_failures = 0
        config.health_cause = None if status == RunStatus.SUCCEEDED else "skipped_records"
        config.health_detail = None
    elif status == RunStatus.FAILED:
        config.health = StreamHealth.FAILING.value
        config.last_failure_at = now
        config.consecutive_failures += 1
        config.health_detail = (error or "")[:2000] or None
        config.health_cause = describe_failure(error or "", platform="").category
    elif status == RunStatus.INTERRUPTED and config.health == StreamHealth.HEALTHY.value:
        config.health = StreamHealth.DEGRADED.value
        config.health_cause = "interrupted"
        config.health_detail = (error or "")[:2000] or None
    session.add(config)


# --- reading: one SQL expression per decision --------------------------------------------------


def _stream_health_expr(now: datetime) -> Any:
    """A stream's health now: paused, the live state of its active run, or the stored one."""
    return sa.case(
        (col(StreamConfig.paused).is_(True), StreamHealth.PAUSED.value),
        (col(SyncRun.stalled_at).is_not(None), StreamHealth.STALLED.value),
        (col(SyncRun.waiting_until) > now, StreamHealth.WAITING.value),
        else_=col(StreamConfig.health),
    )


def _streams_with_runs(now: datetime) -> Any:
    """stream_configs joined to each stream's active run (at most one: a unique index)."""
    health = _stream_health_expr(now).label("health")
    return (
        sa.select(
            col(StreamConfig.integration_id),
            col(StreamConfig.stream),
            health,
            col(SyncRun.id).label("run_id"),
        )
        .select_from(StreamConfig)
        .join(
            SyncRun,
            sa.and_(
                col(SyncRun.integration_id) == col(StreamConfig.integration_id),
                col(SyncRun.stream) == col(StreamConfig.stream),
                col(SyncRun.status).in_(ACTIVE_RUN_STATUSES),
            ),
            isouter=True,
        )
        .where(col(StreamConfig.enabled).is_(True))
    )


def _per_integration(now: datetime, ids: Sequence[uuid.UUID] | None) -> Any:
    """Per integration: its worst stream rank, how many streams ran, failed, are active."""
    streams = _streams_with_runs(now)
    if ids is not None:
        streams = streams.where(col(StreamConfig.integration_id).in_(ids))
    s = streams.subquery()
    rank = sa.case(*((s.c.health == name, value) for name, value in _RANK.items()), else_=0)
    counted = s.c.health.notin_([StreamHealth.PAUSED.value])
    ran = sa.and_(counted, s.c.health != StreamHealth.NEVER_RUN.value)
    return (
        sa.select(
            s.c.integration_id,
            func.max(sa.case((counted, rank), else_=0)).label("worst"),
            func.sum(sa.case((ran, 1), else_=0)).label("ran"),
            func.sum(sa.case((s.c.health == StreamHealth.FAILING.value, 1), else_=0)).label(
                "failing"
            ),
            func.sum(sa.case((s.c.run_id.is_not(None), 1), else_=0)).label("active"),
            func.sum(sa.case((counted, 1), else_=0)).label("monitored"),
        )
        .group_by(s.c.integration_id)
        .subquery()
    )


def _integration_health_expr(per: Any) -> Any:
    """The status a person sees, from the integration's row and its streams' roll-up."""
    status = col(Integration.status)
    declined = (
        select(ConnectLink.id)
        .where(
            col(ConnectLink.integration_id) == col(Integration.id),
            col(ConnectLink.declined_at).is_not(None),
        )
        .exists()
    )
    uninstalled = (
        select(Incident.id)
        .where(
            col(Incident.integration_id) == col(Integration.id),
            Incident.cause == IncidentCause.UNINSTALLED.value,
            Incident.status == IncidentStatus.OPEN.value,
        )
        .exists()
    )
    worst = func.coalesce(per.c.worst, 0)
    return sa.case(
        (sa.and_(status == IntegrationStatus.PENDING.value, declined), "declined"),
        (status == IntegrationStatus.PENDING.value, "pending"),
        (status == IntegrationStatus.NEEDS_REAUTH.value, "needs_reauth"),
        (sa.and_(status == IntegrationStatus.DISCONNECTED.value, uninstalled), "uninstalled"),
        (status == IntegrationStatus.DISCONNECTED.value, "disconnected"),
        (status == IntegrationStatus.PAUSED.value, "paused"),
        (
            sa.and_(
                worst == _RANK[StreamHealth.FAILING.value],
                per.c.failing >= per.c.ran,
            ),
            "failing",
        ),
        (worst >= _RANK[StreamHealth.FAILING.value], "degraded"),
        (worst == _RANK[StreamHealth.STALLED.value], "stalled"),
        (worst == _RANK[StreamHealth.DEGRADED.value], "degraded"),
        (worst == _RANK[StreamHealth.WAITING.value], "waiting"),
        (func.coalesce(per.c.active, 0) > 0, "syncing"),
        else_="connected",
    )


def integration_health(
    *, session: Session, ids: Sequence[uuid.UUID | str], now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """For a page of integrations: id -> {health, failing_streams, streams, active_streams}.

    One grouped query over the page's streams and their active runs.
    """
    if not ids:
        return {}
    uuids = [uuid.UUID(str(i)) for i in ids]
    per = _per_integration(now or datetime.now(UTC), uuids)
    health = _integration_health_expr(per).label("health")
    rows = session.execute(
        sa.select(col(Integration.id), health, per.c.failing, per.c.monitored, per.c.active)
        .select_from(Integration)
        .join(per, per.c.integration_id == col(Integration.id), isouter=True)
        .where(col(Integration.id).in_(uuids))
    ).all()
    return {
        str(integration_id): {
            "health": value,
            "failing_streams": int(failing or 0),
            "streams": int(monitored or 0),
            "active_streams": int(active or 0),
        }
        for integration_id, value, failing, monitored, active in rows
    }


def health_counts(*, session: Session, now: datetime | None = None) -> dict[str, int]:
    """How many integrations are in each status (every status present, zeros included); they
    add up to the number of integrations. One grouped query."""
    per = _per_integration(now or datetime.now(UTC), None)
    health = _integration_health_expr(per).label("health")
    rows = session.execute(
        sa.select(health, func.count())
        .select_from(Integration)
        .join(per, per.c.integration_id == col(Integration.id), isouter=True)
        .group_by(health)
    ).all()
    counts = {value.value: 0 for value in IntegrationHealth}
    counts.update({str(value): int(count) for value, count in rows})
    return counts


def card_counts(*, session: Session, now: datetime | None = None) -> dict[str, int]:
    """The Overview cards: ``CARD_BUCKETS`` counts plus ``total``; the buckets add up to it."""
    counts = health_counts(session=session, now=now)
    cards = {
        bucket: sum(counts[member.value] for member in members)
        for bucket, members in CARD_BUCKETS.items()
    }
    cards["total"] = sum(counts.values())
    return cards


def stream_health(
    *, session: Session, integration_id: uuid.UUID, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The Streams tab's health columns, one dict per stream by name (disabled ones too,
    with ``enabled`` False): health, cause and its words, last success and failure."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        sa.select(StreamConfig, SyncRun, _stream_health_expr(now))
        .select_from(StreamConfig)
        .join(
            SyncRun,
            sa.and_(
                col(SyncRun.integration_id) == col(StreamConfig.integration_id),
                col(SyncRun.stream) == col(StreamConfig.stream),
                col(SyncRun.status).in_(ACTIVE_RUN_STATUSES),
            ),
            isouter=True,
        )
        .where(col(StreamConfig.integration_id) == integration_id)
        .order_by(col(StreamConfig.stream))
    ).all()
    integration = session.get(Integration, integration_id)
    platform = integration.platform if integration else ""
    result = []
    for config, run, health in rows:
        cause, detail = config.health_cause or "", config.health_detail or ""
        words = ""
        if health == StreamHealth.STALLED.value and run is not None:
            cause, detail, words = "stalled", run.stall_reason or "", run.stall_reason or ""
        elif health == StreamHealth.WAITING.value and run is not None:
            cause, detail, words = _waiting_words(run)
        elif health == StreamHealth.FAILING.value:
            described = describe_failure(
                detail, platform=platform, interval_minutes=config.interval_minutes
            )
            words = f"{described.words} — {described.advice}"
        result.append(
            {
                "stream": config.stream,
                "enabled": config.enabled,
                "health": health,
                "cause": cause,
                "cause_words": words,
                "error": detail,
                "last_success_at": _iso(config.last_success_at),
                "last_failure_at": _iso(config.last_failure_at),
                "consecutive_failures": config.consecutive_failures,
                "run_id": str(run.id) if run is not None else "",
                "waiting_until": _iso(run.waiting_until) if run is not None else "",
                "stalled_at": _iso(run.stalled_at) if run is not None else "",
            }
        )
    return result


def _waiting_words(run: SyncRun) -> tuple[str, str, str]:
    """cause, detail and words of a run that waits: for a report Amazon prepares, a retry, or
    a rate limit (times as HH:MM UTC, like the incidents)."""
    detail = run.waiting_reason or ""
    if run.waiting_for == "report" and run.waiting_checked_at is not None:
        checked = hhmm(run.waiting_checked_at)
        return (
            "report_preparing",
            detail,
            f"waiting for Amazon to prepare the report (checked {checked})",
        )
    until = hhmm(run.waiting_until) if run.waiting_until else "soon"
    if run.waiting_for == "retry":
        return "retrying", detail, f"waiting to retry (next attempt {until})"
    return "rate_limited", detail, f"waiting for the rate limit (next call {until})"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
