"""The sync runner: one run of one stream of one integration, crash-safe and observable.

scheduler -> ``SyncEngine.request_sync`` -> ``_execute`` -> connector.read_stream ->
``_apply_batch`` (upsert + checkpoint + counters in ONE transaction) -> live progress.

A crash at any instant loses nothing: the checkpoint only moves together with the rows it
covers, and upserts are idempotent, so the next run resumes from the checkpoint.
Errors map to statuses here and nowhere else.

Several processes share the database (hub workers, `hub sync`). The database keeps one queued
or running run per stream (a partial unique index), a queued run is executed by whichever
process claims it first, and every write of a running run is fenced by its owner's worker id,
so a run declared dead by crash recovery can never write again.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, func, select

from connectors.base import Batch, Connector, IntegrationRef
from connectors.errors import AuthError, PlatformError, RateLimited, TransientError
from connectors.registry import get_connector
from dashboard.db import in_session, in_write_session
from dashboard.models import (
    ACTIVE_RUN_STATUSES,
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
from dashboard.services.records import mark_missing_deleted, mark_seen, upsert_records
from dashboard.settings import get_settings

log = logging.getLogger("hub.sync")

MAX_EVENTS_PER_RUN = 200  # the per-run log stays bounded; the last event says how many were cut
STALE_AFTER = timedelta(minutes=2)
HEARTBEAT_EVERY = 10.0
RECOVERY_EVERY = 15.0  # seconds between sweeps for runs of dead processes
HANDOVER_EVERY = 1.0  # seconds between looks for queued runs without an owner (`hub sync`)
RETRY_DELAYS = (2.0, 10.0, 30.0)  # seconds before attempts 2, 3, 4 of a transient failure
ACTIVE = ACTIVE_RUN_STATUSES
RUNS: sa.Table = SyncRun.__table__  # type: ignore[attr-defined]
SYNCABLE = (
    IntegrationStatus.CONNECTED.value,
    IntegrationStatus.SYNCING.value,
    IntegrationStatus.ERROR.value,
)

ConnectorFactory = Callable[[str], Connector]


# --- which process runs a run ------------------------------------------------------------------
#
# A worker id is ``host:pid:start:scope``: ``start`` is the process's start time (clock ticks
# since boot) and ``scope`` names the kernel boot and pid namespace. Together they let any
# process on the same host and namespace prove that a run's process has ended, even when its
# pid was reused, without waiting for the heartbeat to go stale. Elsewhere only the heartbeat
# tells.


def _process_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from /proc; None when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parens
    return fields[0], fields[19]


@functools.cache
def _pid_scope() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{boot}/{namespace}").hex[:10]


def worker_id() -> str:
    host, pid = socket.gethostname(), os.getpid()
    stat, scope = _process_stat(pid), _pid_scope()
    if stat is None or not scope:
        return f"{host}:{pid}"
    return f"{host}:{pid}:{stat[1]}:{scope}"


def process_gone(worker: str | None) -> bool:
    """True only when ``worker`` is provably a process of this host that has ended."""
    parts = (worker or "").rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    host, pid, started, scope = parts
    if host != socket.gethostname() or not scope or scope != _pid_scope():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    stat = _process_stat(int(pid))
    if stat is None:
        return False
    state, ticks = stat
    return ticks != started or state in ("Z", "X")  # pid reused, or killed and not yet reaped


class SyncRefused(Exception):
    """A sync that cannot start (integration not connected, unknown stream ...)."""


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
        run_here: bool = True,
    ) -> list[uuid.UUID]:
        """Queue a run per stream (all enabled ones when ``stream`` is None) and start them.

        A stream that already has a queued or running run (in any process) is not queued
        twice; that run's id is returned instead. ``run_here=False`` leaves new runs queued
        without an owner, for a hub process to adopt (``hub sync`` without ``--wait``).
        Raises SyncRefused when the integration cannot sync.
        """
        integration_uuid = uuid.UUID(str(integration_id))
        owner = self.worker if run_here else None
        run_ids = await in_session(
            lambda s: _queue_runs(
                s, integration_uuid, stream, RunTrigger(trigger).value, full_refresh, owner
            )
        )
        if run_here:
            for run_id in run_ids:
                self.start(run_id)
        return run_ids

    def start(self, run_id: uuid.UUID) -> None:
        """Execute a queued run here, unless another process claims it first."""
        if run_id in self._tasks and not self._tasks[run_id].done():
            return
        task = asyncio.get_running_loop().create_task(self._guarded(run_id), name=f"sync:{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    async def wait(self, run_ids: list[uuid.UUID] | None = None) -> None:
        """Wait for the given runs (or all running ones) executing in this process."""
        tasks = [self._tasks[r] for r in (run_ids or list(self._tasks)) if r in self._tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_finished(self, run_ids: list[uuid.UUID], *, poll: float = 0.5) -> None:
        """Wait until every run has ended, wherever it executes (here or in another process).

        While waiting, runs whose process died are recovered (they end ``interrupted``), so a
        wait never outlives a dead process by more than the staleness bound.
        """
        await self.wait(run_ids)
        last_sweep = time.monotonic()
        while await in_session(lambda s: _active_among(s, run_ids)):
            await asyncio.sleep(poll)
            if time.monotonic() - last_sweep >= RECOVERY_EVERY:
                last_sweep = time.monotonic()
                await self.recover_interrupted(adopt=False)
                for run_id in await in_session(partial(_adoptable_queued, run_ids=run_ids)):
                    self.start(run_id)  # released by a process that stopped: run it here
            await self.wait(run_ids)

    async def wait_resumed(
        self,
        run_ids: list[uuid.UUID],
        *,
        on_resumed: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None,
        poll: float = 0.5,
    ) -> list[uuid.UUID]:
        """Like ``wait_finished``, but a run that ends ``interrupted`` is followed to the run
        that resumed its stream (``resumed_by``: the retry crash recovery queued), and that
        one to its end, and so on. Returns the last run of each, in the order given.

        ``on_resumed(interrupted, resumed)`` is called at each step. A retry nobody starts
        (no hub running) is started here, like the runs handed to ``wait_finished``.
        """
        final, followed = list(run_ids), set(run_ids)
        while True:
            await self.wait_finished(final, poll=poll)
            links = await in_session(partial(_resumed_by, run_ids=final))
            links = {old: new for old, new in links.items() if new not in followed}
            if not links:
                return final
            for old, new in links.items():
                followed.add(new)
                if on_resumed is not None:
                    await on_resumed(old, new)
            final = [links.get(run_id, run_id) for run_id in final]
            for run_id in await in_session(
                partial(_adoptable_queued, run_ids=list(links.values()))
            ):
                self.start(run_id)

    async def stop(self) -> None:
        """Cancel running tasks; their runs become interrupted and resume at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def recover_interrupted(self, *, adopt: bool = True) -> list[uuid.UUID]:
        """Runs left running by a dead process become interrupted and their streams resume.

        A run is dead when its heartbeat is older than ``STALE_AFTER`` or its process is
        provably gone (same host); a run of a live process is never touched. Each gets a
        ``retry`` run from the stream's checkpoint. With ``adopt`` this process also starts
        those retries and every queued run no live process will start; without (``hub
        sync``), they stay queued for a hub process. Returns the runs started here.
        """
        owner = self.worker if adopt else None
        runs = await in_session(lambda s: _recover_stale_runs(s, retry_owner=owner))
        if not adopt:
            return []
        started = [run_id for run_id in runs if run_id not in self._tasks]
        for run_id in started:
            self.start(run_id)
        return started

    async def adopt_handed_over(self) -> list[uuid.UUID]:
        """Start the queued runs without an owner (``hub sync`` handed them to the hub, or a
        stopping process released them); the claim decides which process executes each."""
        runs = await in_session(_unowned_queued)
        started = [run_id for run_id in runs if run_id not in self._tasks]
        for run_id in started:
            self.start(run_id)
        return started

    async def supervise(self, stop: asyncio.Event) -> None:
        """Until ``stop``: every ``HANDOVER_EVERY`` seconds start the runs handed over to any
        hub process (one indexed query), every ``RECOVERY_EVERY`` seconds sweep for runs of
        dead processes."""
        last_sweep = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=HANDOVER_EVERY)
            if stop.is_set():
                return
            try:
                if time.monotonic() - last_sweep >= RECOVERY_EVERY:
                    last_sweep = time.monotonic()
                    await self.recover_interrupted()
                else:
                    await self.adopt_handed_over()
            except Exception:  # a database hiccup must not end crash recovery for good
                log.exception("crash recovery sweep failed; retrying")

    # --- execution -----------------------------------------------------------------------

    async def _guarded(self, run_id: uuid.UUID) -> None:
        async with self._semaphore:
            try:
                await self._execute(run_id)
            except asyncio.CancelledError:
                await in_write_session(partial(_stopped, run_id=run_id, worker=self.worker))
                raise
            except RunLost:
                log_json(
                    logging.WARNING,
                    "run declared dead by crash recovery; this process stops it",
                    run_id=run_id,
                )
            except Exception as error:  # the engine must survive any connector bug
                log.exception("sync run %s crashed", run_id)
                reason = f"internal error: {type(error).__name__}: {error}"
                await in_write_session(
                    partial(
                        _finish, run_id=run_id, status=RunStatus.FAILED, error=reason,
                        worker=self.worker,
                    )
                )  # fmt: skip

    async def _execute(self, run_id: uuid.UUID) -> None:
        context = await in_write_session(partial(_start_run, run_id=run_id, worker=self.worker))
        if context is None:
            return  # claimed by another process, finished, or cancelled meanwhile
        log_json(
            logging.INFO,
            "run started",
            run_id=run_id,
            stream=context.stream,
            integration_id=context.integration.id,
        )
        started = time.monotonic()
        finish = partial(_finish, run_id=run_id, worker=self.worker)
        while True:
            status, reason = RunStatus.SUCCEEDED, None
            try:
                await self._read_all(context, started)
            except RunCancelled:
                status = RunStatus.CANCELLED
            except AuthError as error:
                await in_write_session(
                    partial(_auth_failed, context=context, message=str(error), worker=self.worker)
                )
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
                    await in_write_session(
                        partial(_event, run_id=run_id, level=EventLevel.WARNING, message=note)
                    )
                    await asyncio.sleep(delay)
                    context.attempt += 1
                    context.cursor = await in_write_session(
                        partial(_checkpoint, context=context, worker=self.worker)
                    )
                    continue
            except PlatformError as error:
                status, reason = RunStatus.FAILED, str(error)
            await in_write_session(partial(finish, status=status, error=reason))
            return

    async def _read_all(self, context: _RunContext, started: float) -> None:
        connector = self._connector_factory(context.platform)
        credentials = DbCredentialStore(context.integration.id)
        reader = asyncio.current_task()
        assert reader is not None
        # Batches beat too, but a report being prepared can take minutes between batches.
        beat = asyncio.get_running_loop().create_task(self._beat(context, reader))
        try:
            batches = connector.read_stream(
                context.integration, credentials, context.stream, context.cursor,
                full_refresh=context.full_refresh and context.cursor is None,
            )  # fmt: skip
            async for batch in batches:
                elapsed = time.monotonic() - started
                cancelled = await in_write_session(
                    functools.partial(
                        _apply_batch, context=context, batch=batch, elapsed=elapsed,
                        worker=self.worker,
                    )
                )  # fmt: skip
                context.cursor = batch.cursor
                if cancelled:
                    raise RunCancelled
        except asyncio.CancelledError:
            if context.lost:  # cancelled by our own heartbeat, not by a stop
                reader.uncancel()
                raise RunLost from None
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(Exception):
                await connector.aclose()

    async def _beat(self, context: _RunContext, reader: asyncio.Task[Any]) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            try:
                owned = await in_write_session(
                    partial(_heartbeat, run_id=context.run_id, worker=self.worker)
                )
            except Exception:  # the next beat or batch tries again
                log.warning("heartbeat of run %s failed", context.run_id, exc_info=True)
                continue
            if not owned:
                context.lost = True
                reader.cancel()
                return


# --- database steps (each runs in a worker thread inside one transaction) ----------------------


def _insert_run(
    session: Session,
    *,
    integration_id: uuid.UUID,
    stream: str,
    trigger: str,
    full_refresh: bool = False,
    worker: str | None = None,
) -> uuid.UUID | None:
    """Queue a run unless the stream has an active one (the database decides); its id or None."""
    run = SyncRun(
        integration_id=integration_id, stream=stream, trigger=trigger,
        full_refresh=full_refresh, worker=worker,
    )  # fmt: skip
    values = {column.name: getattr(run, column.name) for column in RUNS.columns}
    statement = _insert_run_statement(session.get_bind().dialect.name)
    return session.execute(statement, values).scalar_one_or_none()


@functools.cache
def _insert_run_statement(dialect: str) -> sa.Executable:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, built once (values are parameters, so
    the compiled form is cached). RETURNING, because psycopg reports no row count for it."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
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
    worker: str | None,
) -> list[uuid.UUID]:
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
                full_refresh=full_refresh, worker=worker,
            )  # fmt: skip
            if run_id is not None:
                run_ids.append(run_id)
                break
        else:
            raise SyncRefused(f"{config.stream} is busy; try again")
    return run_ids


def _start_run(session: Session, run_id: uuid.UUID, worker: str) -> _RunContext | None:
    """Claim a queued run for ``worker``; None when another process claimed it first."""
    now = datetime.now(UTC)
    claimed = session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status == RunStatus.QUEUED.value)
        .values(status=RunStatus.RUNNING.value, worker=worker, started_at=now, heartbeat_at=now)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    run = session.get(SyncRun, run_id, populate_existing=True)
    assert run is not None
    integration = session.get(Integration, run.integration_id)
    config = _stream_config(session, run.integration_id, run.stream)
    if integration is None or config is None:
        _finish(session, run_id, RunStatus.FAILED, "the integration or stream was removed")
        return None
    if run.full_refresh and run.attempt == 1:
        config.cursor = None  # full resync: start over, keep the history of runs
        session.add(config)
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


def _queue_retry(session: Session, run_id: uuid.UUID, owner: str | None) -> uuid.UUID | None:
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
        trigger=RunTrigger.RETRY.value, worker=owner,
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
        _queue_retry(session, run_id, owner=None)


def _recover_stale_runs(session: Session, retry_owner: str | None) -> list[uuid.UUID]:
    """Interrupt the runs of dead processes and queue their retries; runs to start now.

    A run is dead when its heartbeat is older than ``STALE_AFTER`` or its process provably
    ended. Each is ended by a conditional update that also checks the heartbeat seen here, so
    a run whose owner beats meanwhile is left alone and two recovering processes cannot both
    recover it.
    """
    cutoff = datetime.now(UTC) - STALE_AFTER
    candidates = session.exec(
        select(SyncRun.id, SyncRun.worker, SyncRun.heartbeat_at).where(
            SyncRun.status == RunStatus.RUNNING.value
        )
    ).all()
    retries: list[uuid.UUID] = []
    for run_id, worker, heartbeat_at in candidates:
        if heartbeat_at is not None and heartbeat_at >= cutoff and not process_gone(worker):
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
            retry = _queue_retry(session, run_id, owner=retry_owner)
            if retry is not None and retry_owner is not None:
                retries.append(retry)
    return retries + [r for r in _adoptable_queued(session) if r not in retries]


def _adoptable_queued(session: Session, run_ids: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Queued runs no live process will start: no owner, a dead owner, or waiting too long."""
    cutoff = datetime.now(UTC) - STALE_AFTER
    query = select(SyncRun.id, SyncRun.worker, SyncRun.created_at).where(
        SyncRun.status == RunStatus.QUEUED.value
    )
    if run_ids is not None:
        query = query.where(col(SyncRun.id).in_(run_ids))
    return [
        run_id
        for run_id, worker, created_at in session.exec(query.order_by(col(SyncRun.created_at)))
        if worker is None or created_at < cutoff or process_gone(worker)
    ]


def _unowned_queued(session: Session) -> list[uuid.UUID]:
    """Queued runs without an owner, oldest first: read off ix_sync_runs_status_created."""
    return list(
        session.exec(
            select(SyncRun.id)
            .where(SyncRun.status == RunStatus.QUEUED.value, col(SyncRun.worker).is_(None))
            .order_by(col(SyncRun.created_at))
        ).all()
    )


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


def queue_retry(*, session: Session, run_id: uuid.UUID, worker: str | None = None) -> uuid.UUID:
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
    (retry,) = _queue_runs(
        session, run.integration_id, run.stream, RunTrigger.RETRY.value, False, worker
    )
    claimed = session.execute(
        sa.update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.resumed_by.is_(None))
        .values(resumed_by=retry)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise SyncRefused("This run was retried already; its retry is the newer run above.")
    return retry


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


@contextlib.asynccontextmanager
async def engine_lifespan() -> AsyncIterator[SyncEngine]:
    """The engine of a hub process: crash recovery at start-up and every ``RECOVERY_EVERY``
    seconds (in every process, lease or not), runs handed over by ``hub sync`` started within
    ``HANDOVER_EVERY`` seconds, and an orderly stop at shutdown."""
    engine = get_engine()
    try:
        await engine.recover_interrupted()
    except Exception:  # serve anyway; the periodic sweep tries again
        log.exception("crash recovery at start-up failed")
    stop = asyncio.Event()
    supervisor = asyncio.get_running_loop().create_task(engine.supervise(stop))
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait([supervisor], timeout=5)
        await engine.stop()


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

        # The lease holder moves the stream's next scheduled run a full interval after this
        # one when it reconciles: at once here, within RENEW_EVERY from any other worker.
        scheduler.poke()
    return run_ids


async def retry_run(*, run_id: uuid.UUID) -> uuid.UUID:
    """The Runs page's Retry: ``queue_retry``, then start the retry in this process."""
    engine = get_engine()
    retry = await in_session(lambda s: queue_retry(session=s, run_id=run_id, worker=engine.worker))
    engine.start(retry)
    return retry
