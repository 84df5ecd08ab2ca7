"""The sync runner: one run of one stream of one integration, crash-safe and observable.

scheduler -> ``SyncEngine.request_sync`` -> ``_execute`` -> connector.read_stream ->
``_apply_batch`` (upsert + checkpoint + counters in ONE transaction) -> live progress.

A crash at any instant loses nothing: the checkpoint only moves together with the rows it
covers, and upserts are idempotent, so the next run resumes from the checkpoint.
Errors map to statuses here and nowhere else.

This module is the runner (``SyncEngine``); its parts live beside it: ``sync_queue``
(queueing, claiming, crash recovery, cancel/pause), ``sync_progress`` (the fenced writes of a
running run: batches, heartbeats, events, the end of a run), ``sync_retry`` (the attempt
policy), ``sync_workers`` (which process runs a run) and ``sync_waits`` (waiting for runs
wherever they execute).

Several processes share the database (web workers, `hub worker`s on other hosts, `hub sync`).
The database keeps one queued or running run per stream (a partial unique index). Runs queued
for the hub (scheduled, manual, webhook, retry) have no owner: every process with free
capacity claims them, oldest first with at most ``HUB_SYNC_PER_INTEGRATION`` of one
integration at once (``sync_claims``), woken at once by the change feed; a run that ends
starts its integration's next queued run in its slot, in its last transaction. Every
write of a running run is fenced by its owner's worker id, so a run declared dead by crash
recovery can never write again. Each process beats in ``hub_workers``; one silent for
``WORKER_DEAD_AFTER`` is dead, and its runs resume elsewhere from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from connectors.base import Connector
from connectors.errors import AuthError, PlatformError, RateLimited, TransientError
from connectors.ratelimit import observe
from connectors.registry import get_connector
from dashboard.db import in_session, in_write_session
from dashboard.logging_setup import bind_log_context
from dashboard.models import (
    RunStatus,
    RunTrigger,
)
from dashboard.services import app_credentials
from dashboard.services.changefeed import LIVE, QUEUE, get_feed
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.sync_claims import claim_queued, finish_and_start_next
from dashboard.services.sync_observe import (
    ThrottledOut,
    _note_progress,
    _RunObserver,
    beat_while_reading,
)
from dashboard.services.sync_progress import (
    RunCancelled,
    RunLost,
    _apply_batch,
    _auth_failed,
    _checkpoint,
    _finish,
    _mark_waiting,
    _RunContext,
    log_json,
)
from dashboard.services.sync_queue import SYNCABLE as SYNCABLE
from dashboard.services.sync_queue import SyncRefused as SyncRefused
from dashboard.services.sync_queue import (
    _queue_runs,
    _recover_stale_runs,
    _start_run,
    _stopped,
    _unowned_queued,
)
from dashboard.services.sync_queue import queue_retry as queue_retry
from dashboard.services.sync_queue import request_cancel as request_cancel
from dashboard.services.sync_queue import set_paused as set_paused
from dashboard.services.sync_retry import RETRY_DELAYS, gave_up_reason, retry_delay, retry_note
from dashboard.services.sync_workers import process_gone as process_gone
from dashboard.services.sync_workers import worker_id
from dashboard.settings import get_settings

# The `X as X` imports above re-export names from sync_queue and sync_workers for callers.

log = logging.getLogger("hub.sync")

# Seconds between sweeps for runs of dead processes: with WORKER_DEAD_AFTER, a process killed
# on another host has its runs resumed within ~20 s.
RECOVERY_EVERY = 5.0
HOUSEKEEPING_EVERY = 15.0  # expired links, expiring tokens, old sign-in throttles
PURGE_EVERY = 3600.0  # the change feed's tombstones older than HUB_TOMBSTONE_DAYS
# Seconds between looks for queued runs when no notification came (a lost one, or none sent:
# a write outside the hub's sessions). A notification starts a claim at once.
HANDOVER_EVERY = 1.0

ConnectorFactory = Callable[[str], Connector]


class SyncEngine:
    """Runs syncs in this process with a global concurrency bound and one run per stream."""

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        connector_factory: ConnectorFactory | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.capacity = max_concurrency or get_settings().sync_max_concurrency
        self._semaphore = asyncio.Semaphore(self.capacity)
        self._connector_factory = connector_factory or self._default_connector
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._retry_delays = retry_delays
        self._room_event: asyncio.Event | None = None
        self.supervised = False  # a supervisor claims for this engine (sync_supervisor)
        self._stopping = False
        self._claimed = False  # claimed queued runs for the hub at least once
        self._draining: asyncio.Task[list[uuid.UUID]] | None = None
        self._held: set[uuid.UUID] = set()  # queued for itself, not started yet (``hold``)
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

        A stream with a queued or running run (in any process) is not queued twice: that
        run's id is returned. With ``run_here`` this process holds the runs (``hold``) and
        starts them as the per-integration cap allows, unless a hub process with room claims
        them first; ``run_here=False`` leaves them to the hub's (``hub sync`` without
        ``--wait``). Raises SyncRefused when the integration cannot sync."""
        integration_uuid = uuid.UUID(str(integration_id))
        run_ids = await in_session(
            lambda s: _queue_runs(
                s, integration_uuid, stream, RunTrigger(trigger).value, full_refresh
            )
        )
        if run_here:
            await self.hold(run_ids)
        return run_ids

    def start(self, run_id: uuid.UUID, started: _RunContext | None = None) -> None:
        """Execute a queued run here, unless another process claims it first (``started``:
        the run is running already, started by the end of the run before it in its slot)."""
        if run_id in self._tasks and not self._tasks[run_id].done():
            return
        task = asyncio.get_running_loop().create_task(
            self._guarded(run_id, started), name=f"sync:{run_id}"
        )
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._ended(run_id))

    def _ended(self, run_id: uuid.UUID) -> None:
        self._tasks.pop(run_id, None)
        self.room.set()  # capacity freed: the supervisor claims the next queued run
        # An engine claiming for the hub without a supervisor (a script, a test) drains the
        # queue itself; one holding its own runs (`hub sync --wait`) starts the next of those.
        idle = self._draining is None or self._draining.done()
        if self._stopping or not idle:
            return
        if self._claimed and not self.supervised:
            self._draining = asyncio.get_running_loop().create_task(self.claim())
        elif self._held:
            self._draining = asyncio.get_running_loop().create_task(self._drain_held())

    @property
    def room(self) -> asyncio.Event:
        """Set when this process may have room for another run (not sent to others)."""
        if self._room_event is None:
            self._room_event = asyncio.Event()
        return self._room_event

    async def claim(self) -> list[uuid.UUID]:
        """Claim as many queued runs without an owner as this process has room for, fairly
        across integrations (``sync_claims``), and start them."""
        self._claimed = True
        room = self.capacity - len(self._tasks)
        if room <= 0:
            return []
        claimed = await in_write_session(partial(claim_queued, worker=self.worker, limit=room))
        for run_id in claimed:
            self.start(run_id)
        return claimed

    async def hold(self, run_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Runs this process queued for itself (``hub sync --wait``, a crash recovery's
        retries), started through the fair claim, so they too wait while their integration
        has ``HUB_SYNC_PER_INTEGRATION`` runs going anywhere; the rest start as runs end,
        open to every process meanwhile. Returns the runs started now."""
        self._held.update(run_ids)
        return await self._claim_held()

    async def _claim_held(self) -> list[uuid.UUID]:
        room = self.capacity - len(self._tasks)
        held = list(self._held)
        if room <= 0 or not held:
            return []

        def claim(session: Any) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
            claimed = claim_queued(session, worker=self.worker, limit=room, among=held)
            return claimed, _unowned_queued(session, run_ids=held)

        claimed, waiting = await in_write_session(claim)
        # What another process took or what ended meanwhile is no longer this one's to start.
        self._held = set(waiting) - set(claimed)
        for run_id in claimed:
            self.start(run_id)
        return claimed

    async def _drain_held(self) -> list[uuid.UUID]:
        """``_claim_held`` as a run ends. While none runs here it looks again at the next
        run write: the claim may have skipped an integration row locked for a moment, or
        counted a run still ending (on PostgreSQL), and no run here would end to retry it."""
        feed = get_feed()
        while True:
            seen = feed.version(LIVE)
            claimed = await self._claim_held()
            if claimed or not self._held or self._tasks:
                return claimed
            await feed.wait(LIVE, seen, at_most=HANDOVER_EVERY)

    async def wait(self, run_ids: list[uuid.UUID] | None = None) -> None:
        """Wait for the given runs (or all running ones) executing in this process, and for
        the runs an unsupervised engine claims as earlier ones end."""
        while True:
            tasks: list[asyncio.Task[Any]] = [
                self._tasks[r] for r in (run_ids or list(self._tasks)) if r in self._tasks
            ]
            if self._draining is not None and not self._draining.done():
                tasks.append(self._draining)
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel running tasks; their runs become interrupted and resume at the next start."""
        self._stopping = True  # what the stopping runs hand back is for other processes
        if self._draining is not None:
            self._draining.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping = False

    async def recover_interrupted(self, *, adopt: bool = True) -> list[uuid.UUID]:
        """Runs left running by a dead process become interrupted and their streams resume.

        A run is dead when its heartbeat is older than ``STALE_AFTER`` or its process is
        provably gone (same host); a run of a live process is never touched. Each gets a
        ``retry`` run from the stream's checkpoint, queued for any process. With ``adopt``
        this process also holds them (``hold``: it starts those the per-integration cap
        allows); without (``hub sync``), they wait for a hub process. Queued runs that a dead
        process held go back to the queue, for the fair claim (``claim``). Returns the runs
        started here.
        """
        retries = await in_session(_recover_stale_runs)
        if not adopt:
            return []
        return await self.hold(retries)

    # --- execution -----------------------------------------------------------------------

    async def _guarded(self, run_id: uuid.UUID, started: _RunContext | None = None) -> None:
        next_run = None  # started by the run's last transaction, in the slot it frees
        async with self._semaphore:
            try:
                next_run = await self._execute(run_id, started)
            except asyncio.CancelledError:
                await in_write_session(partial(_stopped, run_id=run_id, worker=self.worker))
                get_feed().changed(QUEUE)  # handed back: another process takes it
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
        if next_run is not None and self._stopping:  # stop() did not see it: it resumes
            await in_write_session(partial(_stopped, run_id=next_run.run_id, worker=self.worker))
        elif next_run is not None:
            self.start(next_run.run_id, next_run)

    async def _execute(
        self, run_id: uuid.UUID, started: _RunContext | None = None
    ) -> _RunContext | None:
        """Run it; the next run its end started in this slot (``finish_and_start_next``)."""
        context = started or await in_write_session(
            partial(_start_run, run_id=run_id, worker=self.worker)
        )
        if context is None:
            return None  # claimed by another process, finished, or cancelled meanwhile
        bind_log_context(run_id=run_id, integration_id=context.integration.id)  # every line
        log_json(
            logging.INFO,
            "run started",
            run_id=run_id,
            stream=context.stream,
            integration_id=context.integration.id,
        )
        context.progress_mono = time.monotonic()
        finish = partial(_finish, run_id=run_id, worker=self.worker)
        while True:
            status, reason = RunStatus.SUCCEEDED, None
            try:
                await self._read_all(context)
            except RunCancelled:
                status = RunStatus.CANCELLED
            except AuthError as error:
                await in_write_session(
                    partial(_auth_failed, context=context, message=str(error), worker=self.worker)
                )
                return None
            except ThrottledOut as error:  # throttled attempt after attempt: no more waiting
                status, reason = RunStatus.FAILED, gave_up_reason(error, attempts=error.attempts)
            except (TransientError, RateLimited) as error:
                delay = retry_delay(error, attempt=context.attempt, delays=self._retry_delays)
                if delay is None:
                    status = RunStatus.FAILED
                    reason = gave_up_reason(error, attempts=context.attempt)
                else:
                    # Waiting to retry is a known wait, not a stall: shown as such.
                    until = datetime.now(UTC) + timedelta(seconds=delay)
                    context.waiting_until_mono = time.monotonic() + delay
                    await in_write_session(
                        partial(
                            _mark_waiting, run_id=run_id, worker=self.worker, until=until,
                            reason=f"retrying after {type(error).__name__}: {error}"[:500],
                            note=retry_note(
                                error, delay=delay, attempt=context.attempt,
                                attempts=len(self._retry_delays) + 1,
                            ),
                            waiting_for="rate_limit" if isinstance(error, RateLimited) else "retry",
                        )
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                    context.attempt += 1
                    context.cursor = await in_write_session(
                        partial(_checkpoint, context=context, worker=self.worker)
                    )
                    continue
            except PlatformError as error:
                status, reason = RunStatus.FAILED, str(error)
            if self._claimed and not self._stopping:  # it claims for the hub: hand on
                return await in_write_session(
                    partial(finish_and_start_next, run_id=run_id, worker=self.worker,
                            status=status, error=reason)
                )  # fmt: skip
            await in_write_session(partial(finish, status=status, error=reason))
            return None

    async def _read_all(self, context: _RunContext) -> None:
        if self._connector_factory == self._default_connector:
            # An integration with its own app (custom distribution) refreshes with that app.
            connector = await app_credentials.connector_for(
                context.platform, context.integration.id
            )
        else:  # tests inject theirs
            connector = self._connector_factory(context.platform)
        credentials = DbCredentialStore(context.integration.id)
        context.report_status = None  # an attempt starts: no report is awaited yet
        reader = asyncio.current_task()
        assert reader is not None
        beat = asyncio.get_running_loop().create_task(
            beat_while_reading(context, reader, worker=self.worker)
        )
        try:
            with observe(
                _RunObserver(worker=self.worker, retry_delays=self._retry_delays, context=context)
            ):
                batches = connector.read_stream(
                    context.integration, credentials, context.stream, context.cursor,
                    full_refresh=context.full_refresh and context.cursor is None,
                )  # fmt: skip
                async for batch in batches:
                    rate = _note_progress(context, len(batch.records) + len(batch.errors))
                    cancelled = await in_write_session(
                        functools.partial(
                            _apply_batch, context=context, batch=batch, rate=rate,
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
    claim_here: bool = True,
) -> list[uuid.UUID]:
    """Queue a run per stream for whichever hub process has room; other processes hear of it
    through the change feed. ``claim_here`` (a user's Sync now): this process claims at once
    if it has room (oldest queued runs first); the scheduler leaves its runs to every process."""
    engine = get_engine()
    run_ids = await engine.request_sync(
        integration_id=integration_id, stream=stream, trigger=trigger, full_refresh=full_refresh,
        run_here=False,
    )  # fmt: skip
    if claim_here:
        await engine.claim()
    if RunTrigger(trigger) == RunTrigger.MANUAL:
        from dashboard.services import scheduler

        # The lease holder moves the stream's next scheduled run a full interval after this
        # one when it reconciles: at once here, within RECONCILE_EVERY from any other worker.
        scheduler.poke()
    return run_ids


async def retry_run(*, run_id: uuid.UUID) -> uuid.UUID:
    """The Runs page's Retry: ``queue_retry`` for any process, this one claiming first."""
    engine = get_engine()
    retry = await in_session(lambda s: queue_retry(session=s, run_id=run_id))
    await engine.claim()
    return retry


# The engine's life in a hub process (beats, claims, sweeps) lives beside it.
from dashboard.services.sync_supervisor import engine_lifespan as engine_lifespan  # noqa: E402
