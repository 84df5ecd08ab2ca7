"""A running run's writes: the fence, each batch (records + checkpoint + counters in one
transaction), heartbeats, the run's event log, and how a run ends (``_finish``).

Every write of a running run starts with the fence, so a run declared dead by crash recovery
can never write again.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from connectors.base import Batch, IntegrationRef
from dashboard.models import (
    ACTIVE_RUN_STATUSES,
    EventLevel,
    Integration,
    IntegrationStatus,
    RunStatus,
    StreamConfig,
    SyncEvent,
    SyncRun,
)
from dashboard.services import alerts
from dashboard.services.integrations import set_integration_status
from dashboard.services.records import mark_missing_deleted, mark_seen, upsert_records

log = logging.getLogger("hub.sync")

MAX_EVENTS_PER_RUN = 200  # the per-run log stays bounded; the last event says how many were cut
ACTIVE = ACTIVE_RUN_STATUSES
RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]


class RunCancelled(Exception):
    pass


class RunLost(Exception):
    """This process no longer owns the run: crash recovery declared it dead meanwhile."""


def log_json(level: int, message: str, **context: Any) -> None:
    """Structured log line carrying integration id, run id and stream."""
    log.log(level, json.dumps({"message": message, **context}, default=str))


@dataclass
class _RunContext:
    run_id: uuid.UUID
    integration: IntegrationRef
    platform: str
    stream: str
    cursor: dict[str, Any] | None
    full_refresh: bool
    attempt: int
    lost: bool = False


def _stream_config(session: Session, integration_id: uuid.UUID, stream: str) -> StreamConfig | None:
    return session.exec(
        select(StreamConfig).where(
            StreamConfig.integration_id == integration_id, StreamConfig.stream == stream
        )
    ).first()


def _fence(session: Session, run_id: uuid.UUID, worker: str) -> None:
    """Beat the run's heartbeat, or raise RunLost when ``worker`` no longer owns it.

    First statement of every write of a running run: on PostgreSQL it locks the run's row
    until the transaction ends, on SQLite it takes the write lock, so crash recovery sees
    either none or all of the transaction.
    """
    owned = session.execute(
        sa.update(RUNS)
        .where(
            RUNS.c.id == run_id,
            RUNS.c.status == RunStatus.RUNNING.value,
            RUNS.c.worker == worker,
        )
        .values(heartbeat_at=datetime.now(UTC))
    )
    if not owned.rowcount:  # type: ignore[attr-defined]
        raise RunLost(str(run_id))


def _apply_batch(
    session: Session, context: _RunContext, batch: Batch, elapsed: float, worker: str
) -> bool:
    """Upsert the batch, move the checkpoint, count: one transaction. True = cancel asked."""
    _fence(session, context.run_id, worker)
    integration_id = uuid.UUID(context.integration.id)
    result = upsert_records(
        session=session,
        integration_id=integration_id,
        records=batch.records,
        children_complete=batch.children_complete,
    )
    if batch.seen is not None:
        mark_seen(
            session=session,
            integration_id=integration_id,
            kind=str(batch.seen.kind),
            external_ids=list(batch.seen.external_ids),
        )
    if batch.snapshot is not None:
        result.deleted += mark_missing_deleted(
            session=session,
            integration_id=integration_id,
            kind=str(batch.snapshot.kind),
            stored_since=batch.snapshot.started_at,
            id_suffix=batch.snapshot.id_suffix,
        )
    config = _stream_config(session, integration_id, context.stream)
    assert config is not None
    config.cursor = batch.cursor
    config.cursor_updated_at = datetime.now(UTC)
    session.add(config)
    run = session.get(SyncRun, context.run_id, populate_existing=True)
    assert run is not None
    run.pages += batch.pages
    run.records_read += len(batch.records) + len(batch.errors)
    run.records_inserted += result.inserted
    run.records_updated += result.updated
    run.records_deleted += result.deleted
    errors = batch.errors + result.errors
    run.records_skipped += len(errors)
    run.cursor_after = batch.cursor
    if batch.total_hint:
        run.records_total = batch.total_hint
        done = batch.done if batch.done is not None else run.records_read
        run.progress = min(1.0, done / batch.total_hint)
    run.records_per_second = run.records_read / elapsed if elapsed > 0 else None
    session.add(run)
    for error in errors:
        _event(
            session,
            context.run_id,
            EventLevel.WARNING,
            f"skipped record {error.external_id or '(no id)'}: {error.message}",
        )
    return run.cancel_requested


def _heartbeat(session: Session, run_id: uuid.UUID, worker: str) -> bool:
    """Beat; False when the run is no longer this worker's."""
    try:
        _fence(session, run_id, worker)
    except RunLost:
        return False
    return True


def _checkpoint(session: Session, context: _RunContext, worker: str) -> dict[str, Any] | None:
    _fence(session, context.run_id, worker)
    session.execute(
        sa.update(RUNS).where(RUNS.c.id == context.run_id).values(attempt=context.attempt)
    )
    config = _stream_config(session, uuid.UUID(context.integration.id), context.stream)
    assert config is not None
    return config.cursor


def _event(
    session: Session,
    run_id: uuid.UUID,
    level: EventLevel,
    message: str,
    context: dict[str, Any] | None = None,
) -> None:
    count = session.exec(
        select(func.count()).select_from(SyncEvent).where(SyncEvent.run_id == run_id)
    ).one()
    if count > MAX_EVENTS_PER_RUN:
        return
    if count == MAX_EVENTS_PER_RUN:
        level, message = EventLevel.WARNING, "event log full: later events of this run dropped"
    session.add(
        SyncEvent(run_id=run_id, level=level.value, message=message[:2000], context=context or {})
    )


def _finish(
    session: Session,
    run_id: uuid.UUID,
    status: RunStatus,
    error: str | None,
    *,
    worker: str | None = None,
    guard: sa.ColumnElement[bool] | None = None,
) -> bool:
    """End an active run (only if ``worker`` still owns it, when given); False if it had ended."""
    conditions = [RUNS.c.id == run_id, RUNS.c.status.in_(ACTIVE)]
    if worker is not None:
        conditions.append(RUNS.c.worker == worker)
    if guard is not None:
        conditions.append(guard)
    now = datetime.now(UTC)
    ended = session.execute(
        sa.update(RUNS).where(*conditions).values(status=status.value, error=error, finished_at=now)
    )
    if not ended.rowcount:  # type: ignore[attr-defined]
        return False
    run = session.get(SyncRun, run_id, populate_existing=True)
    assert run is not None
    if status == RunStatus.SUCCEEDED and run.records_skipped:
        run.status = RunStatus.PARTIAL.value
    if status == RunStatus.SUCCEEDED and run.records_total is not None:
        run.progress = 1.0
    session.add(run)
    level = EventLevel.ERROR if status == RunStatus.FAILED else EventLevel.INFO
    _event(session, run_id, level, f"run {run.status}" + (f": {error}" if error else ""))
    integration = session.get(Integration, run.integration_id)
    if integration is not None:
        config = _stream_config(session, integration.id, run.stream)
        if config is not None:
            config.last_run_at = now
            session.add(config)
        if status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
            integration.last_sync_at = now
        still_running = session.exec(
            select(func.count())
            .select_from(SyncRun)
            .where(
                SyncRun.integration_id == integration.id,
                col(SyncRun.status).in_(ACTIVE),
                SyncRun.id != run_id,
            )
        ).one()
        if integration.status == IntegrationStatus.SYNCING.value and not still_running:
            integration.status = (
                IntegrationStatus.ERROR.value
                if status == RunStatus.FAILED
                else IntegrationStatus.CONNECTED.value
            )
            integration.status_detail = error if status == RunStatus.FAILED else None
        session.add(integration)
        if status == RunStatus.FAILED:
            alerts.notify(
                session=session,
                kind="run_failed",
                integration_id=integration.id,
                run_id=run_id,
                message=f"{integration.display_name}: {run.stream} sync failed: {error}",
            )
    log_json(
        logging.INFO if status != RunStatus.FAILED else logging.WARNING,
        f"run {run.status}",
        run_id=run_id,
        stream=run.stream,
        integration_id=run.integration_id,
        error=error,
    )
    return True


def _auth_failed(session: Session, context: _RunContext, message: str, worker: str) -> None:
    """The platform refused our credentials: the merchant must reconnect."""
    integration_id = uuid.UUID(context.integration.id)
    if not _finish(
        session,
        context.run_id,
        RunStatus.FAILED,
        f"the platform refused the hub's access ({message}); reconnect the integration",
        worker=worker,
    ):
        return
    set_integration_status(
        session=session,
        integration_id=integration_id,
        status=IntegrationStatus.NEEDS_REAUTH,
        detail="Access was revoked or expired. Send the merchant a reconnect link.",
    )
    integration = session.get(Integration, integration_id)
    alerts.notify(
        session=session,
        kind="needs_reauth",
        integration_id=integration_id,
        run_id=context.run_id,
        message=f"{integration.display_name if integration else 'An integration'} "
        "needs to be reconnected",
    )
