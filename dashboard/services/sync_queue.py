"""Queueing, claiming and recovering runs, in the database: one queued or running run per
stream (a partial unique index), a claim decides which process executes a queued run, and
crash recovery ends the runs of dead processes and queues their retries. Also the operator
actions on runs and streams (cancel, pause)."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.base import IntegrationRef
from dashboard.db import dialect_insert
from dashboard.models import (
    ACTIVE_RUN_STATUSES,
    EventLevel,
    Integration,
    IntegrationStatus,
    RunStatus,
    RunTrigger,
    StreamConfig,
    SyncRun,
    User,
)
from dashboard.services.audit import record_audit
from dashboard.services.run_log import EVENT_COUNT, add_event, counted
from dashboard.services.sync_progress import _finish, _RunContext, _stream_config
from dashboard.services.sync_workers import beating_workers, process_gone, silent_workers
from dashboard.settings import get_settings

STALE_AFTER = timedelta(minutes=2)
# A claimed run starts at once (a claim takes only what its process has room for); one still
# queued this long after its claim (``heartbeat_at``, set by the claim) never will.
CLAIM_STARTS_WITHIN = timedelta(minutes=1)
ACTIVE = ACTIVE_RUN_STATUSES
RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]
SYNCABLE = (
    IntegrationStatus.CONNECTED.value,
    IntegrationStatus.SYNCING.value,
    IntegrationStatus.ERROR.value,
)


class SyncRefused(Exception):
    """A sync that cannot start (integration not connected, unknown stream ...)."""


# --- database steps (each runs in a worker thread inside one transaction) ----------------------


def _insert_run(
    session: Session,
    *,
    integration_id: uuid.UUID,
    stream: str,
    trigger: str,
    full_refresh: bool = False,
) -> uuid.UUID | None:
    """Queue a run, without an owner, unless the stream has an active one (the database
    decides); its id or None."""
    run = SyncRun(
        integration_id=integration_id, stream=stream, trigger=trigger,
        full_refresh=full_refresh,
    )  # fmt: skip
    values = {column.name: getattr(run, column.name) for column in RUNS.columns}
    statement = _insert_run_statement(session.get_bind().dialect.name)
    return session.execute(statement, values).scalar_one_or_none()


@functools.cache
def _insert_run_statement(dialect: str) -> sa.Executable:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, built once (values are parameters, so
    the compiled form is cached). RETURNING, because psycopg reports no row count for it."""
    insert = dialect_insert(dialect)
    return insert(RUNS).on_conflict_do_nothing().returning(RUNS.c.id)


def _active_run_id(session: Session, integration_id: uuid.UUID, stream: str) -> uuid.UUID | None:
    return session.exec(
        select(SyncRun.id).where(
            SyncRun.integration_id == integration_id,
            SyncRun.stream == stream,
            col(SyncRun.status).in_(ACTIVE),
        )
    ).first()


def _queue_runs(
    session: Session,
    integration_id: uuid.UUID,
    stream: str | None,
    trigger: str,
    full_refresh: bool,
) -> list[uuid.UUID]:
    """A run per stream (``stream``, or every enabled one), queued without an owner; a
    stream's active run instead where it has one."""
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise SyncRefused("no such integration")
    if integration.status not in SYNCABLE:
        reason = {
            "pending": "is not connected yet; connect it",
            "needs_reauth": "needs reauth (its access was revoked or expired); reconnect it",
            "disconnected": "is disconnected; connect it",
            "paused": "is paused; resume it",
        }.get(integration.status, f"is {integration.status.replace('_', ' ')}; connect it")
        raise SyncRefused(f"{integration.display_name} {reason} before syncing")
    query = select(StreamConfig).where(StreamConfig.integration_id == integration_id)
    if stream is not None:
        query = query.where(StreamConfig.stream == stream)
    else:
        query = query.where(col(StreamConfig.enabled).is_(True))
    configs = session.exec(query).all()
    if stream is not None and not configs:
        raise SyncRefused(f"{integration.display_name} has no stream {stream!r}")
    run_ids = []
    for config in configs:
        # The active run may end between the failed insert and the look-up: try again.
        for _ in range(5):
            run_id = _active_run_id(session, integration_id, config.stream) or _insert_run(
                session, integration_id=integration_id, stream=config.stream, trigger=trigger,
                full_refresh=full_refresh,
            )  # fmt: skip
            if run_id is not None:
                run_ids.append(run_id)
                break
        else:
            raise SyncRefused(f"{config.stream} is busy; try again")
    return run_ids


# What starting a run reads of it, in the claiming statement.
_START_READ = tuple(
    RUNS.c[name] for name in ("integration_id", "stream", "trigger", "attempt", "full_refresh")
)


def _start_run(session: Session, run_id: uuid.UUID, worker: str) -> _RunContext | None:
    """Claim a queued run for ``worker``; None when another process claimed it first."""
    now = datetime.now(UTC)
    # The claim reads what the run's start needs in the same statement (no load of the row).
    run = session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status == RunStatus.QUEUED.value)
        .values(
            status=RunStatus.RUNNING.value,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            progress_at=now,
            waiting_until=None,
            stalled_at=None,
        )
        .returning(*_START_READ, EVENT_COUNT)
    ).first()
    if run is None:
        return None
    counted(session, run_id, run.events)
    integration = session.get(Integration, run.integration_id)
    config = _stream_config(session, run.integration_id, run.stream)
    if integration is None or config is None:
        _finish(session, run_id, RunStatus.FAILED, "the integration or stream was removed")
        return None
    if integration.status not in SYNCABLE:  # uninstalled, revoked or paused since it queued
        status = integration.status.replace("_", " ")
        _finish(session, run_id, RunStatus.CANCELLED, f"not run: the integration is {status}")
        return None
    if run.full_refresh and run.attempt == 1:
        config.cursor = None  # full resync: start over, keep the history of runs
        session.add(config)
    session.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(cursor_before=config.cursor))
    add_event(
        session,
        run_id,
        EventLevel.INFO,
        f"run started ({run.trigger}, attempt {run.attempt}): "
        + (f"from checkpoint {json.dumps(config.cursor, default=str)[:400]}" if config.cursor
           else "from the beginning" + (" (full resync)" if run.full_refresh else "")),
        {"cursor": config.cursor},
    )  # fmt: skip
    stall_minutes = config.stall_minutes or get_settings().sync_stall_minutes
    if integration.status != IntegrationStatus.SYNCING.value:
        integration.status = IntegrationStatus.SYNCING.value
        session.add(integration)
    return _RunContext(
        run_id=run_id,
        integration=IntegrationRef(
            id=str(integration.id),
            platform=integration.platform,
            shop_domain=integration.shop_domain,
            selling_partner_id=integration.selling_partner_id,
            region=integration.region,
            marketplaces=tuple(integration.marketplaces or ()),
        ),
        platform=integration.platform,
        stream=run.stream,
        cursor=config.cursor,
        full_refresh=run.full_refresh,
        attempt=run.attempt,
        stall_seconds=stall_minutes * 60.0,
        interval_minutes=config.interval_minutes,
    )


def _queue_retry(session: Session, run_id: uuid.UUID) -> uuid.UUID | None:
    """After an interruption, queue a run that resumes the stream from its checkpoint; the
    interrupted run's ``resumed_by`` names it, for whoever waits for the interrupted run."""
    run = session.get(SyncRun, run_id)
    if run is None:
        return None
    integration = session.get(Integration, run.integration_id)
    config = _stream_config(session, run.integration_id, run.stream)
    if integration is None or integration.status not in SYNCABLE:
        return None
    if config is None or not config.enabled or config.paused:
        return None  # resumes when the stream is resumed
    retry = _insert_run(
        session, integration_id=run.integration_id, stream=run.stream,
        trigger=RunTrigger.RETRY.value,
    )  # fmt: skip
    if retry is not None:  # None only if the stream has an active run, which it cannot
        session.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(resumed_by=retry))
    return retry


def _stopped(session: Session, run_id: uuid.UUID, worker: str) -> None:
    """This process stops: a queued run is left for another process, a running one resumes."""
    released = session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status == RunStatus.QUEUED.value)
        .values(worker=None)
    )
    if released.rowcount:  # type: ignore[attr-defined]
        return
    stopped = _finish(
        session,
        run_id,
        RunStatus.INTERRUPTED,
        "the hub stopped; the next start resumes this stream",
        worker=worker,
    )
    if stopped:
        _queue_retry(session, run_id)


def _recover_stale_runs(session: Session) -> list[uuid.UUID]:
    """Interrupt the runs of dead processes and queue their retries (returned, without an
    owner: the fair claim hands them out); queued runs stranded with a dead owner go back to
    the queue too.

    A run is dead when its heartbeat is older than ``STALE_AFTER``, its process provably
    ended (same host) or fell silent in ``hub_workers`` (any host, within seconds). Each is
    ended by a conditional update that also checks the heartbeat seen here, so a run whose
    owner beats meanwhile is left alone and two recovering processes cannot both recover it.
    """
    cutoff = datetime.now(UTC) - STALE_AFTER
    candidates = session.exec(
        select(SyncRun.id, SyncRun.worker, SyncRun.heartbeat_at).where(
            SyncRun.status == RunStatus.RUNNING.value
        )
    ).all()
    silent = silent_workers(session, {worker for _, worker, _ in candidates})
    retries: list[uuid.UUID] = []
    for run_id, worker, heartbeat_at in candidates:
        fresh = heartbeat_at is not None and heartbeat_at >= cutoff
        if fresh and worker not in silent and not process_gone(worker):
            continue
        same_beat = (
            RUNS.c.heartbeat_at.is_(None) if heartbeat_at is None
            else RUNS.c.heartbeat_at == heartbeat_at
        )  # fmt: skip
        same_worker = RUNS.c.worker.is_(None) if worker is None else RUNS.c.worker == worker
        if _finish(
            session,
            run_id,
            RunStatus.INTERRUPTED,
            "the process running it stopped; resumed from the last checkpoint",
            guard=sa.and_(RUNS.c.status == RunStatus.RUNNING.value, same_beat, same_worker),
        ):
            retry = _queue_retry(session, run_id)
            if retry is not None:
                retries.append(retry)
    _release_stranded(session)
    return retries


def _release_stranded(session: Session) -> int:
    """Queued runs held by a process that will not start them lose their owner, and the
    fair claim (``sync_claims``) hands them out again: the owner died; or it claimed them
    more than ``CLAIM_STARTS_WITHIN`` ago and never started them (its start failed, e.g.
    the database refused a connection: seen in bench/scale.py at 10,000 integrations, where
    five such runs of a live process stayed queued for 25 minutes and held their
    integrations at the cap); or it never beats (``hub sync --wait``) and they waited past
    ``STALE_AFTER``. How many were released."""
    now = datetime.now(UTC)
    rows = session.exec(
        select(SyncRun.id, SyncRun.worker, SyncRun.created_at, SyncRun.heartbeat_at).where(
            SyncRun.status == RunStatus.QUEUED.value, col(SyncRun.worker).is_not(None)
        )
    ).all()
    if not rows:
        return 0
    owners = {worker for _, worker, _, _ in rows}
    silent, beating = silent_workers(session, owners), beating_workers(session, owners)
    released = 0
    for run_id, worker, created_at, claimed_at in rows:
        dead = worker in silent or process_gone(worker)
        never_started = claimed_at is not None and claimed_at < now - CLAIM_STARTS_WITHIN
        forgotten = worker not in beating and created_at < now - STALE_AFTER
        if not (dead or never_started or forgotten):
            continue
        released += session.execute(
            sa.update(RUNS)
            .where(RUNS.c.id == run_id, RUNS.c.status == RunStatus.QUEUED.value)
            .where(RUNS.c.worker == worker)
            .values(worker=None, heartbeat_at=None)
        ).rowcount  # type: ignore[attr-defined]
    return released


def _unowned_queued(session: Session, run_ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Queued runs without an owner (only among ``run_ids`` if given), oldest first: read
    off ix_sync_runs_unclaimed."""
    query = select(SyncRun.id).where(
        SyncRun.status == RunStatus.QUEUED.value, col(SyncRun.worker).is_(None)
    )
    if run_ids is not None:
        query = query.where(col(SyncRun.id).in_(run_ids))
    return list(session.exec(query.order_by(col(SyncRun.created_at))).all())


def _resumed_by(session: Session, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """For the interrupted runs among ``run_ids``: the run that resumed each one's stream."""
    rows = session.exec(
        select(SyncRun.id, SyncRun.resumed_by).where(
            col(SyncRun.id).in_(run_ids),
            SyncRun.status == RunStatus.INTERRUPTED.value,
            col(SyncRun.resumed_by).is_not(None),
        )
    ).all()
    return {run_id: resumed for run_id, resumed in rows if resumed is not None}


def _active_among(session: Session, run_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(
        session.exec(
            select(SyncRun.id).where(col(SyncRun.id).in_(run_ids), col(SyncRun.status).in_(ACTIVE))
        ).all()
    )


# --- operator actions (UI and CLI) -------------------------------------------------------------


def request_cancel(*, session: Session, run_id: uuid.UUID) -> SyncRun:
    """Ask a run to stop between batches; a queued run is cancelled at once."""
    run = session.get(SyncRun, run_id)
    if run is None:
        raise SyncRefused("no such run")
    queued = RunStatus.QUEUED.value
    if run.status == queued and _finish(
        session, run_id, RunStatus.CANCELLED, None, guard=RUNS.c.status == queued
    ):
        session.refresh(run)  # readable once the session is gone
        return run
    # Running (or claimed by a process just now): its process stops after the batch in hand.
    session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status.in_(ACTIVE))
        .values(cancel_requested=True)
    )
    session.refresh(run)
    return run


RETRYABLE = (RunStatus.FAILED.value, RunStatus.INTERRUPTED.value, RunStatus.CANCELLED.value)


def queue_retry(*, session: Session, run_id: uuid.UUID) -> uuid.UUID:
    """Retry a failed, interrupted or cancelled run once: queue a run of its stream (or take
    the stream's active one) and name it in the run's ``resumed_by``. The conditional update
    of ``resumed_by`` decides between concurrent clicks; the loser's transaction rolls back.
    Raises SyncRefused when the run cannot be retried or was retried already."""
    run = session.get(SyncRun, run_id)
    if run is None:
        raise SyncRefused("That run no longer exists.")
    if run.resumed_by is not None:
        raise SyncRefused("This run was retried already; its retry is the newer run above.")
    if run.status not in RETRYABLE:
        raise SyncRefused(
            f"Only failed, interrupted or cancelled runs can be retried: this one is {run.status}."
        )
    (retry,) = _queue_runs(session, run.integration_id, run.stream, RunTrigger.RETRY.value, False)
    claimed = session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.resumed_by.is_(None))
        .values(resumed_by=retry)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise SyncRefused("This run was retried already; its retry is the newer run above.")
    return retry


def set_paused(
    *,
    session: Session,
    integration_id: uuid.UUID,
    paused: bool,
    stream: str | None = None,
    actor: User | None = None,
) -> None:
    """Pause or resume one stream, or the whole integration when ``stream`` is None; audited
    in ``actor``'s name when one is given (a bulk change records one entry of its own)."""
    if stream is None:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise SyncRefused("no such integration")
        if paused and integration.status in SYNCABLE:
            integration.status = IntegrationStatus.PAUSED.value
        elif not paused and integration.status == IntegrationStatus.PAUSED.value:
            integration.status = IntegrationStatus.CONNECTED.value
        session.add(integration)
    else:
        config = session.exec(
            select(StreamConfig).where(
                StreamConfig.integration_id == integration_id, StreamConfig.stream == stream
            )
        ).first()
        if config is None:
            raise SyncRefused(f"no stream {stream!r}")
        config.paused = paused
        session.add(config)
    if actor is not None:
        scope = "integration" if stream is None else "stream"
        record_audit(
            session=session,
            actor=actor.email,
            action=f"{scope}.pause" if paused else f"{scope}.resume",
            target=str(integration_id),
            context={"stream": stream} if stream else {},
        )
