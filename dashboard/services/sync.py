"""The sync runner: one run of one stream of one integration, crash-safe and observable.

scheduler -> ``SyncEngine.request_sync`` -> ``_execute`` -> connector.read_stream ->
``_apply_batch`` (upsert + checkpoint + counters in ONE transaction) -> live progress.

A crash at any instant loses nothing: the checkpoint only moves together with the rows it
covers, and upserts are idempotent, so the next run resumes from the checkpoint.
Errors map to statuses here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session, col, func, select

from connectors.base import Batch, Connector, IntegrationRef
from connectors.errors import AuthError, PlatformError, RateLimited, TransientError
from connectors.registry import get_connector
from dashboard.db import in_session
from dashboard.models import (
    EventLevel,
    Integration,
    IntegrationStatus,
    RunStatus,
    RunTrigger,
    StreamConfig,
    SyncEvent,
    SyncRun,
)
from dashboard.services import alerts
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.integrations import set_integration_status
from dashboard.services.records import upsert_records
from dashboard.settings import get_settings

log = logging.getLogger("hub.sync")

MAX_EVENTS_PER_RUN = 200  # the per-run log stays bounded; the last event says how many were cut
STALE_AFTER = timedelta(minutes=2)
HEARTBEAT_EVERY = 10.0
RETRY_DELAYS = (2.0, 10.0, 30.0)  # seconds before attempts 2, 3, 4 of a transient failure
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
SYNCABLE = (
    IntegrationStatus.CONNECTED.value,
    IntegrationStatus.SYNCING.value,
    IntegrationStatus.ERROR.value,
)

ConnectorFactory = Callable[[str], Connector]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class SyncRefused(Exception):
    """A sync that cannot start (integration not connected, unknown stream ...)."""


class RunCancelled(Exception):
    pass


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


class SyncEngine:
    """Runs syncs in this process with a global concurrency bound and one run per stream."""

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        connector_factory: ConnectorFactory | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._semaphore = asyncio.Semaphore(max_concurrency or get_settings().sync_max_concurrency)
        self._connector_factory = connector_factory or self._default_connector
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._retry_delays = retry_delays
        self.worker = worker_id()

    @staticmethod
    def _default_connector(platform: str) -> Connector:
        return get_connector(platform, get_settings().model_dump())

    # --- requests ------------------------------------------------------------------------

    async def request_sync(
        self,
        *,
        integration_id: uuid.UUID | str,
        stream: str | None = None,
        trigger: RunTrigger | str = RunTrigger.MANUAL,
        full_refresh: bool = False,
    ) -> list[uuid.UUID]:
        """Queue a run per stream (all enabled ones when ``stream`` is None) and start them.

        A stream that already has a queued or running run is not queued twice; that run's id
        is returned instead. Raises SyncRefused when the integration cannot sync.
        """
        integration_uuid = uuid.UUID(str(integration_id))
        run_ids = await in_session(
            lambda s: _queue_runs(
                s, integration_uuid, stream, RunTrigger(trigger).value, full_refresh
            )
        )
        for run_id in run_ids:
            self.start(run_id)
        return run_ids

    def start(self, run_id: uuid.UUID) -> None:
        if run_id in self._tasks and not self._tasks[run_id].done():
            return
        task = asyncio.get_running_loop().create_task(self._guarded(run_id), name=f"sync:{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    async def wait(self, run_ids: list[uuid.UUID] | None = None) -> None:
        """Wait for the given runs (or all running ones) to finish."""
        tasks = [self._tasks[r] for r in (run_ids or list(self._tasks)) if r in self._tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel running tasks; their runs become interrupted and resume at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def recover_interrupted(self) -> list[uuid.UUID]:
        """Runs left running by a dead process become interrupted; their streams resume."""
        resumed = await in_session(_recover_stale_runs)
        for run_id in resumed:
            self.start(run_id)
        return resumed

    # --- execution -----------------------------------------------------------------------

    async def _guarded(self, run_id: uuid.UUID) -> None:
        async with self._semaphore:
            try:
                await self._execute(run_id)
            except asyncio.CancelledError:
                await in_session(
                    partial(
                        _finish,
                        run_id=run_id,
                        status=RunStatus.INTERRUPTED,
                        error="the hub stopped; the next start resumes this stream",
                    )
                )
                raise
            except Exception as error:  # the engine must survive any connector bug
                log.exception("sync run %s crashed", run_id)
                reason = f"internal error: {type(error).__name__}: {error}"
                await in_session(
                    partial(_finish, run_id=run_id, status=RunStatus.FAILED, error=reason)
                )

    async def _execute(self, run_id: uuid.UUID) -> None:
        context = await in_session(partial(_start_run, run_id=run_id, worker=self.worker))
        if context is None:
            return
        log_json(
            logging.INFO,
            "run started",
            run_id=run_id,
            stream=context.stream,
            integration_id=context.integration.id,
        )
        started = time.monotonic()
        while True:
            status, reason = RunStatus.SUCCEEDED, None
            try:
                await self._read_all(context, started)
            except RunCancelled:
                status = RunStatus.CANCELLED
            except AuthError as error:
                await in_session(partial(_auth_failed, context=context, message=str(error)))
                return
            except (TransientError, RateLimited) as error:
                if context.attempt > len(self._retry_delays):
                    status = RunStatus.FAILED
                    reason = (
                        f"gave up after {context.attempt} attempts: {error}. The next "
                        "scheduled run resumes from the last checkpoint."
                    )
                else:
                    delay = self._retry_delays[context.attempt - 1]
                    if isinstance(error, RateLimited) and error.retry_after:
                        delay = max(delay, error.retry_after)
                    note = (
                        f"{type(error).__name__}: {error}; retrying in {delay:.0f} s "
                        "from the last checkpoint"
                    )
                    await in_session(
                        partial(_event, run_id=run_id, level=EventLevel.WARNING, message=note)
                    )
                    await asyncio.sleep(delay)
                    context.attempt += 1
                    context.cursor = await in_session(partial(_checkpoint, context=context))
                    continue
            except PlatformError as error:
                status, reason = RunStatus.FAILED, str(error)
            await in_session(partial(_finish, run_id=run_id, status=status, error=reason))
            return

    async def _read_all(self, context: _RunContext, started: float) -> None:
        connector = self._connector_factory(context.platform)
        credentials = DbCredentialStore(context.integration.id)
        # Batches beat too, but a report being prepared can take minutes between batches.
        beat = asyncio.get_running_loop().create_task(self._beat(context.run_id))
        try:
            batches = connector.read_stream(
                context.integration, credentials, context.stream, context.cursor,
                full_refresh=context.full_refresh and context.cursor is None,
            )  # fmt: skip
            async for batch in batches:
                elapsed = time.monotonic() - started
                cancelled = await in_session(
                    functools.partial(_apply_batch, context=context, batch=batch, elapsed=elapsed)
                )
                context.cursor = batch.cursor
                if cancelled:
                    raise RunCancelled
        finally:
            beat.cancel()
            with contextlib.suppress(Exception):
                await connector.aclose()

    @staticmethod
    async def _beat(run_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            await in_session(lambda s: _heartbeat(s, run_id))


# --- database steps (each runs in a worker thread inside one transaction) ----------------------


def _queue_runs(
    session: Session,
    integration_id: uuid.UUID,
    stream: str | None,
    trigger: str,
    full_refresh: bool,
) -> list[uuid.UUID]:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise SyncRefused("no such integration")
    if integration.status not in SYNCABLE:
        raise SyncRefused(
            f"{integration.display_name} is {integration.status.replace('_', ' ')}; "
            "connect it before syncing"
        )
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
        active = session.exec(
            select(SyncRun).where(
                SyncRun.integration_id == integration_id,
                SyncRun.stream == config.stream,
                col(SyncRun.status).in_(ACTIVE),
            )
        ).first()
        if active is not None:
            run_ids.append(active.id)
            continue
        run = SyncRun(
            integration_id=integration_id, stream=config.stream, trigger=trigger,
            full_refresh=full_refresh,
        )  # fmt: skip
        session.add(run)
        session.flush()
        run_ids.append(run.id)
    return run_ids


def _start_run(session: Session, run_id: uuid.UUID, worker: str) -> _RunContext | None:
    run = session.get(SyncRun, run_id)
    if run is None or run.status not in ACTIVE:
        return None
    integration = session.get(Integration, run.integration_id)
    config = session.exec(
        select(StreamConfig).where(
            StreamConfig.integration_id == run.integration_id, StreamConfig.stream == run.stream
        )
    ).first()
    if integration is None or config is None:
        _finish(session, run_id, RunStatus.FAILED, "the integration or stream was removed")
        return None
    if run.full_refresh and run.attempt == 1 and run.started_at is None:
        config.cursor = None  # full resync: start over, keep the history of runs
        session.add(config)
    now = datetime.now(UTC)
    run.status = RunStatus.RUNNING.value
    run.started_at = run.started_at or now
    run.heartbeat_at = now
    run.worker = worker
    run.cursor_before = config.cursor
    session.add(run)
    if integration.status != IntegrationStatus.SYNCING.value:
        integration.status = IntegrationStatus.SYNCING.value
        session.add(integration)
    return _RunContext(
        run_id=run.id,
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
    )


def _apply_batch(session: Session, context: _RunContext, batch: Batch, elapsed: float) -> bool:
    """Upsert the batch, move the checkpoint, count: one transaction. True = cancel asked."""
    integration_id = uuid.UUID(context.integration.id)
    result = upsert_records(session=session, integration_id=integration_id, records=batch.records)
    config = session.exec(
        select(StreamConfig).where(
            StreamConfig.integration_id == integration_id, StreamConfig.stream == context.stream
        )
    ).one()
    config.cursor = batch.cursor
    config.cursor_updated_at = datetime.now(UTC)
    session.add(config)
    run = session.get(SyncRun, context.run_id)
    assert run is not None
    run.pages += batch.pages
    run.records_read += len(batch.records) + len(batch.errors)
    run.records_inserted += result.inserted
    run.records_updated += result.updated
    run.records_deleted += result.deleted
    errors = batch.errors + result.errors
    run.records_skipped += len(errors)
    run.cursor_after = batch.cursor
    run.heartbeat_at = datetime.now(UTC)
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


def _heartbeat(session: Session, run_id: uuid.UUID) -> None:
    run = session.get(SyncRun, run_id)
    if run is not None:
        run.heartbeat_at = datetime.now(UTC)
        session.add(run)


def _checkpoint(session: Session, context: _RunContext) -> dict[str, Any] | None:
    run = session.get(SyncRun, context.run_id)
    if run is not None:
        run.attempt = context.attempt
        session.add(run)
    config = session.exec(
        select(StreamConfig).where(
            StreamConfig.integration_id == uuid.UUID(context.integration.id),
            StreamConfig.stream == context.stream,
        )
    ).one()
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


def _finish(session: Session, run_id: uuid.UUID, status: RunStatus, error: str | None) -> None:
    run = session.get(SyncRun, run_id)
    if run is None:
        return
    now = datetime.now(UTC)
    run.status = status.value
    run.error = error
    run.finished_at = now
    if status == RunStatus.SUCCEEDED and run.records_skipped:
        run.status = RunStatus.PARTIAL.value
    if status == RunStatus.SUCCEEDED and run.records_total is not None:
        run.progress = 1.0
    session.add(run)
    level = EventLevel.ERROR if status == RunStatus.FAILED else EventLevel.INFO
    _event(session, run_id, level, f"run {run.status}" + (f": {error}" if error else ""))
    integration = session.get(Integration, run.integration_id)
    if integration is not None:
        config = session.exec(
            select(StreamConfig).where(
                StreamConfig.integration_id == integration.id, StreamConfig.stream == run.stream
            )
        ).first()
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


def _auth_failed(session: Session, context: _RunContext, message: str) -> None:
    """The platform refused our credentials: the merchant must reconnect."""
    integration_id = uuid.UUID(context.integration.id)
    _finish(
        session,
        context.run_id,
        RunStatus.FAILED,
        f"the platform refused the hub's access ({message}); reconnect the integration",
    )
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


def _recover_stale_runs(session: Session) -> list[uuid.UUID]:
    cutoff = datetime.now(UTC) - STALE_AFTER
    stale = session.exec(
        select(SyncRun).where(
            SyncRun.status == RunStatus.RUNNING.value,
            col(SyncRun.heartbeat_at) < cutoff,
        )
    ).all()
    resumed: list[uuid.UUID] = []
    for run in stale:
        _finish(
            session,
            run.id,
            RunStatus.INTERRUPTED,
            "the process running it stopped; resumed from the last checkpoint",
        )
        retry = SyncRun(
            integration_id=run.integration_id, stream=run.stream, trigger=RunTrigger.RETRY.value
        )
        session.add(retry)
        session.flush()
        resumed.append(retry.id)
    # Queued runs of a dead process would never start: start them here.
    queued = session.exec(select(SyncRun.id).where(SyncRun.status == RunStatus.QUEUED.value)).all()
    return resumed + [run_id for run_id in queued if run_id not in resumed]


# --- operator actions (UI and CLI) -------------------------------------------------------------


def request_cancel(*, session: Session, run_id: uuid.UUID) -> SyncRun:
    """Ask a run to stop between batches; a queued run is cancelled at once."""
    run = session.get(SyncRun, run_id)
    if run is None:
        raise SyncRefused("no such run")
    if run.status == RunStatus.QUEUED.value:
        _finish(session, run_id, RunStatus.CANCELLED, None)
    elif run.status == RunStatus.RUNNING.value:
        run.cancel_requested = True
        session.add(run)
    return run


def set_paused(
    *, session: Session, integration_id: uuid.UUID, paused: bool, stream: str | None = None
) -> None:
    """Pause or resume one stream, or the whole integration when ``stream`` is None."""
    if stream is None:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise SyncRefused("no such integration")
        if paused and integration.status in SYNCABLE:
            integration.status = IntegrationStatus.PAUSED.value
        elif not paused and integration.status == IntegrationStatus.PAUSED.value:
            integration.status = IntegrationStatus.CONNECTED.value
        session.add(integration)
        return
    config = session.exec(
        select(StreamConfig).where(
            StreamConfig.integration_id == integration_id, StreamConfig.stream == stream
        )
    ).first()
    if config is None:
        raise SyncRefused(f"no stream {stream!r}")
    config.paused = paused
    session.add(config)


# --- the process-wide engine -------------------------------------------------------------------

_engine: SyncEngine | None = None


def get_engine() -> SyncEngine:
    global _engine
    if _engine is None:
        _engine = SyncEngine()
    return _engine


def set_engine(engine: SyncEngine | None) -> None:
    global _engine
    _engine = engine


async def request_sync(
    *,
    integration_id: uuid.UUID | str,
    stream: str | None = None,
    trigger: RunTrigger | str = RunTrigger.MANUAL,
    full_refresh: bool = False,
) -> list[uuid.UUID]:
    run_ids = await get_engine().request_sync(
        integration_id=integration_id, stream=stream, trigger=trigger, full_refresh=full_refresh
    )
    if RunTrigger(trigger) == RunTrigger.MANUAL:
        from dashboard.services import scheduler

        active = scheduler.get_scheduler()
        if active is not None:
            for run_stream in await in_session(lambda s: _streams_of(s, run_ids)):
                active.rebase(integration_id, run_stream)
    return run_ids


def _streams_of(session: Session, run_ids: list[uuid.UUID]) -> list[str]:
    return list(session.exec(select(SyncRun.stream).where(col(SyncRun.id).in_(run_ids))).all())
