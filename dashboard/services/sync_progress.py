"""A running run's writes: the fence, each batch (records + checkpoint + counters in one
transaction), heartbeats, the run's event log, and how a run ends (``_finish``).

Every write of a running run starts with the fence, so a run declared dead by crash recovery
can never write again.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
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
    SyncRun,
)
from dashboard.services import completeness, health, incidents
from dashboard.services.integrations import set_integration_status
from dashboard.services.records import mark_missing_deleted, mark_seen, upsert_records
from dashboard.services.run_log import EVENT_COUNT, add_event, counted
from dashboard.settings import get_settings

log = logging.getLogger("hub.sync")

ACTIVE = ACTIVE_RUN_STATUSES
RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]
STREAM_CONFIGS: sa.Table = StreamConfig.__table__  # type: ignore[attr-defined]


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
    # Live truth (issue 13): monotonic time of the last stored page (or the start), requests
    # throttled in a row since then, the known rate-limit wait, whether the run is flagged
    # stalled, and (monotonic time, records read) samples for the rate over the last seconds.
    progress_mono: float = 0.0
    throttled: int = 0
    waiting_until_mono: float = 0.0
    stalled: bool = False
    records_read: int = 0
    pages: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)
    previous_sample: tuple[float, int] = (0.0, 0)
    stall_seconds: float = 900.0
    # While the platform prepares a report the read waits for: its last status, what it is,
    # and (monotonic) when that status last changed, from which its stall clock runs.
    report_status: str | None = None
    report_what: str = ""
    report_changed_mono: float = 0.0
    # What the platform's last answer said of the rate limit (cost and points left, rate).
    quota: str | None = None
    interval_minutes: int = 15


def _stream_config(session: Session, integration_id: uuid.UUID, stream: str) -> StreamConfig | None:
    return session.exec(
        select(StreamConfig).where(
            StreamConfig.integration_id == integration_id, StreamConfig.stream == stream
        )
    ).first()


def _fence(session: Session, run_id: uuid.UUID, worker: str, *read: sa.ColumnElement[Any]) -> Any:
    """Beat the run's heartbeat, or raise RunLost when ``worker`` no longer owns it.

    First statement of every write of a running run: on PostgreSQL it locks the run's row
    until the transaction ends, on SQLite it takes the write lock, so crash recovery sees
    either none or all of the transaction. Returns the run's columns ``read``, read under
    that lock in the same round trip.
    """
    owned = session.execute(
        _FENCE.returning(RUNS.c.id, *read),
        {"run_id": run_id, "owner": worker, "now": datetime.now(UTC)},
    ).first()
    if owned is None:
        raise RunLost(str(run_id))
    return owned


_FENCE = (
    sa.update(RUNS)
    .where(
        RUNS.c.id == sa.bindparam("run_id"),
        RUNS.c.status == RunStatus.RUNNING.value,
        RUNS.c.worker == sa.bindparam("owner"),
    )
    .values(heartbeat_at=sa.bindparam("now"))
)
# What a page's progress is computed from, read by its fence.
_PROGRESS_READ = tuple(
    RUNS.c[name]
    for name in (
        "pages", "records_read", "records_inserted", "records_updated", "records_deleted",
        "records_skipped", "records_total", "progress", "stalled_at", "cancel_requested",
    )
)  # fmt: skip
# What ``_finish`` reads of the run it ends: its summary's figures, its stream, its status.
_FINISH_READ = tuple(
    RUNS.c[name]
    for name in (
        "status", "integration_id", "stream", "cursor_after", "started_at", "attempt", "pages",
        "records_read", "records_inserted", "records_updated", "records_deleted",
        "records_skipped",
    )
)  # fmt: skip


def _note_platform_count(
    session: Session, context: _RunContext, integration_id: uuid.UUID, platform_count: int
) -> None:
    """A full pass ended: the platform's count beside ours (completeness), in its log too."""
    drift = completeness.record_platform_count(
        session=session, integration_id=integration_id, stream=context.stream,
        platform_count=platform_count, threshold_percent=get_settings().completeness_drift_percent,
    )  # fmt: skip
    if drift is not None:
        add_event(
            session, context.run_id, EventLevel.INFO,
            f"full pass done: the platform counts {drift.platform:,}, the hub holds {drift.hub:,}",
        )  # fmt: skip


def _apply_batch(
    session: Session, context: _RunContext, batch: Batch, rate: float | None, worker: str
) -> bool:
    """Upsert the batch, move the checkpoint, count: one transaction. True = cancel asked."""
    before = _fence(session, context.run_id, worker, *_PROGRESS_READ, EVENT_COUNT)
    counted(session, context.run_id, before.events)
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
    # The checkpoint, in one statement (no read of the row first: a round trip per batch).
    moved = session.execute(
        sa.update(STREAM_CONFIGS)
        .where(
            STREAM_CONFIGS.c.integration_id == integration_id,
            STREAM_CONFIGS.c.stream == context.stream,
        )
        .values(cursor=batch.cursor, cursor_updated_at=datetime.now(UTC))
    )
    assert moved.rowcount == 1  # type: ignore[attr-defined]
    errors = batch.errors + result.errors
    counts = {
        "pages": before.pages + batch.pages,
        "records_read": before.records_read + len(batch.records) + len(batch.errors),
        "records_inserted": before.records_inserted + result.inserted,
        "records_updated": before.records_updated + result.updated,
        "records_deleted": before.records_deleted + result.deleted,
        "records_skipped": before.records_skipped + len(errors),
    }
    total, progress = before.records_total, before.progress
    if batch.total_hint:
        done = batch.done if batch.done is not None else counts["records_read"]
        if done <= batch.total_hint:
            total, progress = batch.total_hint, done / batch.total_hint
        else:
            # Read more than the platform announced (the shop grew during a first sync): the
            # total is no total any more, and a full bar or "120 of 100" would say otherwise.
            total = progress = None
    session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == context.run_id)
        .values(
            **counts, cursor_after=batch.cursor, records_total=total, progress=progress,
            # The rate over the last seconds (``rate``), not since the start: a run that
            # waited ten minutes and then reads fast shows how fast it reads now.
            records_per_second=rate, progress_at=datetime.now(UTC), waiting_until=None,
            waiting_reason=None, waiting_for=None, waiting_checked_at=None, stalled_at=None,
            stall_reason=None,
        )
    )  # fmt: skip
    moving_again = before.stalled_at is not None
    # "750 of 1,200" in the total's unit (the stream's own records), else all records read.
    so_far = (
        f"{round(progress * total):,} of {total:,}"
        if total and progress is not None
        else f"{counts['records_read']:,}"
    )
    add_event(
        session,
        context.run_id,
        EventLevel.INFO,
        f"page {counts['pages']}: {len(batch.records) + len(batch.errors)} records "
        f"({result.inserted} new, {result.updated} updated, {result.deleted} deleted, "
        f"{len(errors)} skipped); {so_far} read so far"
        + (f"; {context.quota}" if context.quota else ""),
        {"cursor": batch.cursor},
        droppable=True,
    )
    if batch.platform_count is not None:
        _note_platform_count(session, context, integration_id, batch.platform_count)
    if moving_again:
        add_event(session, context.run_id, EventLevel.INFO, "moving again after a stall")
        integration = session.get(Integration, integration_id)
        if integration is not None:
            incidents.stream_moving(session=session, integration=integration, stream=context.stream)
    for error in errors:
        add_event(
            session,
            context.run_id,
            EventLevel.WARNING,
            f"skipped record {error.external_id or '(no id)'}: {error.message}",
        )
    return bool(before.cancel_requested)


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


def _finish(
    session: Session,
    run_id: uuid.UUID,
    status: RunStatus,
    error: str | None,
    *,
    worker: str | None = None,
    guard: sa.ColumnElement[bool] | None = None,
    report: bool = True,
) -> sa.Row[Any] | None:
    """End an active run (only if ``worker`` still owns it, when given): what it read of the
    run (``_FINISH_READ``), or None if it had ended.

    The stream's health follows (``health.record_run_end``), and so do the integration's
    incidents unless ``report`` is False (an access failure reports its own incident).
    """
    conditions = [RUNS.c.id == run_id, RUNS.c.status.in_(ACTIVE)]
    if worker is not None:
        conditions.append(RUNS.c.worker == worker)
    if guard is not None:
        conditions.append(guard)
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "status": status.value, "error": error, "finished_at": now, "waiting_until": None,
        "waiting_reason": None, "waiting_for": None, "waiting_checked_at": None,
    }  # fmt: skip
    if status == RunStatus.SUCCEEDED:
        values["status"] = sa.case(
            (RUNS.c.records_skipped > 0, RunStatus.PARTIAL.value), else_=status.value
        )
        values["progress"] = sa.case(
            (RUNS.c.records_total.is_not(None), 1.0), else_=RUNS.c.progress
        )
    # One statement ends the run and reads what its summary, health and incidents need.
    run = session.execute(
        sa.update(RUNS).where(*conditions).values(values).returning(*_FINISH_READ, EVENT_COUNT)
    ).first()
    if run is None:
        return None
    counted(session, run_id, run.events)
    if (loaded := session.identity_map.get(session.identity_key(SyncRun, run_id))) is not None:
        session.expire(loaded)  # a caller's copy of the run reads the ended row
    level = EventLevel.ERROR if status == RunStatus.FAILED else EventLevel.INFO
    add_event(
        session, run_id, level,
        f"run {run.status}" + (f": {error}" if error else "") + f" ({_summary(run, now)})",
        {"cursor": run.cursor_after}, summary=True,
    )  # fmt: skip
    integration = session.get(Integration, run.integration_id)
    if integration is not None:
        config = _stream_config(session, integration.id, run.stream)
        if config is not None:
            config.last_run_at = now
            health.record_run_end(session=session, config=config, status=run.status, error=error)
            session.add(config)
            if report and status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
                incidents.stream_succeeded(
                    session=session, integration=integration, stream=run.stream
                )
            elif report and status == RunStatus.FAILED:
                incidents.stream_failed(
                    session=session, integration=integration, stream=run.stream,
                    error=error or "", interval_minutes=config.interval_minutes, run_id=run_id,
                )  # fmt: skip
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
    log_json(
        logging.INFO if status != RunStatus.FAILED else logging.WARNING,
        f"run {run.status}",
        run_id=run_id,
        stream=run.stream,
        integration_id=run.integration_id,
        error=error,
    )
    return run


def _auth_failed(session: Session, context: _RunContext, message: str, worker: str) -> None:
    """The platform refused our credentials: the merchant must reconnect."""
    integration_id = uuid.UUID(context.integration.id)
    if not _finish(
        session,
        context.run_id,
        RunStatus.FAILED,
        f"the platform refused the hub's access ({message}); reconnect the integration",
        worker=worker,
        report=False,
    ):
        return
    integration = session.get(Integration, integration_id)
    if integration is None or integration.status == IntegrationStatus.DISCONNECTED.value:
        # The merchant uninstalled meanwhile (the webhook deleted the tokens this run was
        # refused for): that says more than "needs reauth", and has its own incident.
        return
    set_integration_status(
        session=session,
        integration_id=integration_id,
        status=IntegrationStatus.NEEDS_REAUTH,
        detail="Access was revoked or expired. Send the merchant a reconnect link.",
    )
    incidents.access_lost(
        session=session, integration=integration, error=message, run_id=context.run_id
    )


def _summary(run: Any, now: datetime) -> str:
    """What the run did, in one line, for its last event."""
    took = ""
    if run.started_at is not None:
        took = f" in {max(0.0, (now - run.started_at).total_seconds()):.0f} s"
    return (
        f"{run.records_read:,} records read in {run.pages} pages{took}: "
        f"{run.records_inserted} new, {run.records_updated} updated, "
        f"{run.records_deleted} deleted, {run.records_skipped} skipped; "
        f"attempt {run.attempt}"
    )


def _mark_waiting(
    session: Session,
    run_id: uuid.UUID,
    worker: str,
    until: datetime,
    reason: str,
    note: str | None,
    waiting_for: str = "rate_limit",
    checked_at: datetime | None = None,
) -> None:
    """The run waits until ``until`` for ``waiting_for``: a known rate-limit window, a retry,
    or a report the platform prepares (asked at ``checked_at``). Shown live, not a stall."""
    _fence(session, run_id, worker)
    session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(
            waiting_until=until, waiting_reason=reason[:500], waiting_for=waiting_for,
            waiting_checked_at=checked_at,
        )
    )
    if note:
        add_event(session, run_id, EventLevel.WARNING, note)


def _mark_stalled(session: Session, context: _RunContext, worker: str, reason: str) -> None:
    """No progress for longer than the stall limit: flagged on the run, one incident."""
    _fence(session, context.run_id, worker)
    session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == context.run_id)
        .values(stalled_at=datetime.now(UTC), stall_reason=reason[:500])
    )
    add_event(session, context.run_id, EventLevel.WARNING, f"stalled: {reason}")
    integration = session.get(Integration, uuid.UUID(context.integration.id))
    if integration is not None:
        incidents.stream_stalled(
            session=session, integration=integration, stream=context.stream, reason=reason
        )


def note_report_status(context: _RunContext, *, what: str, status: str, now_mono: float) -> bool:
    """The platform answered ``status`` for the report the run waits for; True when that is a
    change (the report moved: its stall clock starts over)."""
    changed = status != context.report_status or what != context.report_what
    if changed:
        context.report_status, context.report_what = status, what
        context.report_changed_mono = now_mono
    return changed


def report_stall_reason(context: _RunContext, *, now_mono: float) -> str | None:
    """Why a run waiting for a report counts as stalled, or None: the report kept one status
    (say IN_QUEUE) for longer than the stream's stall limit, with no page stored meanwhile.
    A report that moves (IN_QUEUE -> IN_PROGRESS) or a page restarts the clock."""
    since = max(context.progress_mono, context.report_changed_mono)
    quiet = now_mono - since
    if context.stalled or quiet <= context.stall_seconds:
        return None
    return (
        f"Amazon kept {context.report_what} {context.report_status} for {_duration(quiet)} "
        f"(stall limit {_duration(context.stall_seconds)}); the hub keeps asking and reads it "
        "once it is ready"
    )


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
