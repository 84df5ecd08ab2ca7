"""Scheduled syncs: APScheduler 3 in the backend process, jobs stored in the hub database.

With several processes (web workers, ``hub worker``s on other hosts) each runs the lifespan,
but only the holder of the database lease (a row in ``scheduler_leases``, renewed every
``RENEW_EVERY`` seconds, taken over once it expires) schedules: it decides what is due and
queues it, and whichever process has room claims and runs it (``sync``). Crash recovery does
not depend on the lease: every process runs it (``sync_supervisor``). A process killed while
holding the lease is replaced within ``LEASE_TTL + RENEW_EVERY`` (25 s); the new holder fires
each missed run once and schedules the next a full interval after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, col, select

from dashboard.db import get_engine as get_db_engine
from dashboard.db import in_session
from dashboard.models import Integration, RunTrigger, SchedulerLease, StreamConfig, SyncRun
from dashboard.services import schedules, sync
from dashboard.services.scheduler_store import BatchingJobStore

log = logging.getLogger("hub.scheduler")

LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=20)
RENEW_EVERY = 5.0
RECONCILE_EVERY = 10.0  # seconds between reconciles of the job store with stream_configs
JOB_PREFIX = "sync:"
MINUTE = 60.0  # seconds in a schedule minute; tests shrink it to see jobs repeat quickly


def job_id(integration_id: uuid.UUID | str, stream: str) -> str:
    return f"{JOB_PREFIX}{integration_id}:{stream}"


async def scheduled_sync(integration_id: str, stream: str) -> None:
    """The job APScheduler runs (referenced by name in the job store, so keep it importable)."""
    try:
        await sync.request_sync(
            integration_id=integration_id, stream=stream, trigger=RunTrigger.SCHEDULE,
            claim_here=False,
        )  # fmt: skip
    except sync.SyncRefused as refused:
        log.info("scheduled sync of %s/%s skipped: %s", integration_id, stream, refused)


# --- lease -------------------------------------------------------------------------------------


def try_acquire_lease(session: Session, holder: str, *, now: datetime | None = None) -> bool:
    """Take or renew the lease; True when ``holder`` holds it afterwards. ``acquired_at``
    says since when the current holder holds it: set on a takeover, kept on a renewal."""
    now = now or datetime.now(UTC)
    table = SchedulerLease.__table__  # type: ignore[attr-defined]
    result = session.execute(
        sa.update(table)
        .where(table.c.name == LEASE_NAME)
        .where(sa.or_(table.c.holder == holder, table.c.expires_at < now))
        .values(
            holder=holder,
            expires_at=now + LEASE_TTL,
            acquired_at=sa.case((table.c.holder == holder, table.c.acquired_at), else_=now),
        )
    )
    if result.rowcount:  # type: ignore[attr-defined]
        session.commit()
        return True
    if session.get(SchedulerLease, LEASE_NAME) is not None:
        return False
    try:
        session.add(
            SchedulerLease(
                name=LEASE_NAME, holder=holder, acquired_at=now, expires_at=now + LEASE_TTL
            )
        )
        session.commit()
        return True
    except sa.exc.IntegrityError:  # another process inserted it first
        session.rollback()
        return False


def lease_holder(session: Session, *, now: datetime | None = None) -> str | None:
    """The process holding an unexpired scheduler lease, i.e. a live hub; None if none."""
    lease = session.get(SchedulerLease, LEASE_NAME)
    if lease is None or lease.expires_at < (now or datetime.now(UTC)):
        return None
    return lease.holder


def release_lease(session: Session, holder: str) -> None:
    table = SchedulerLease.__table__  # type: ignore[attr-defined]
    session.execute(sa.delete(table).where(table.c.name == LEASE_NAME, table.c.holder == holder))


# --- jobs --------------------------------------------------------------------------------------


class JobSpec(NamedTuple):
    """What one stream's job should be: its integration, stream and schedule."""

    integration_id: str
    stream: str
    minutes: int
    cron: str | None = None


def wanted_jobs(session: Session) -> dict[str, JobSpec]:
    """job id -> the job's spec, for every stream that should run."""
    rows = session.exec(
        select(StreamConfig, Integration)
        .join(Integration, col(Integration.id) == col(StreamConfig.integration_id))
        .where(col(StreamConfig.enabled).is_(True), col(StreamConfig.paused).is_(False))
        .where(col(Integration.status).in_(sync.SYNCABLE))
    ).all()
    return {
        job_id(config.integration_id, config.stream): JobSpec(
            str(config.integration_id), config.stream, config.interval_minutes, config.cron,
        )
        for config, _ in rows
    }  # fmt: skip


class HubScheduler:
    def __init__(self, *, holder: str | None = None) -> None:
        self.holder = holder or sync.worker_id()
        self.scheduler: AsyncIOScheduler | None = None
        self._wake = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    async def _start_scheduler(self) -> None:
        store = BatchingJobStore(engine=get_db_engine(), tablename="apscheduler_jobs")
        scheduler = AsyncIOScheduler(
            jobstores={"default": store},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
            timezone=UTC,
        )
        scheduler.start(paused=True)
        await asyncio.to_thread(_rebase_missed, scheduler)
        scheduler.resume()
        self.scheduler = scheduler
        log.info("this process holds the scheduler lease (%s)", self.holder)

    def _stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    async def reconcile(self) -> None:
        """Make the job store match the stream configs; record each stream's next run.

        The job store is a database too: its reads and writes run in a worker thread (the
        scheduler's methods are thread-safe), never on the event loop.
        """
        scheduler = self.scheduler
        if scheduler is None:
            return
        wanted = await in_session(wanted_jobs)
        longest = timedelta(minutes=max((spec.minutes for spec in wanted.values()), default=0))
        manual = await in_session(lambda s: last_manual_runs(s, since=datetime.now(UTC) - longest))
        next_runs = await asyncio.to_thread(_apply_jobs, scheduler, wanted, manual)
        await in_session(lambda s: _store_next_runs(s, next_runs))

    def poke(self) -> None:
        """Reconcile soon (after a pause, resume, connect or schedule change)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold or wait for the lease (its own loop: a long reconcile of many thousand jobs
        must not let the lease lapse); while held, keep jobs in line with the database every
        ``RECONCILE_EVERY`` seconds, or at once when poked."""
        holding = asyncio.get_running_loop().create_task(self._hold_lease(stop))
        try:
            while not stop.is_set():
                try:
                    await self.reconcile()
                except Exception:  # a database hiccup must not kill scheduling for good
                    log.exception("scheduler reconcile failed; retrying")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=RECONCILE_EVERY)
        finally:
            holding.cancel()
            with contextlib.suppress(BaseException):
                await holding
            self._stop_scheduler()
            with contextlib.suppress(Exception):
                await in_session(lambda s: release_lease(s, self.holder))

    async def _hold_lease(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                leader = await in_session(lambda s: try_acquire_lease(s, self.holder))
                if leader and self.scheduler is None:
                    await self._start_scheduler()
                    self.poke()  # reconcile now: jobs added while nobody held the lease
                elif not leader and self.scheduler is not None:
                    log.warning("scheduler lease lost to another process")
                    self._stop_scheduler()
            except Exception:  # a database hiccup must not kill scheduling for good
                log.exception("scheduler lease renewal failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=RENEW_EVERY)


def last_manual_runs(session: Session, *, since: datetime) -> dict[str, datetime]:
    """job id -> when the newest manual run of that stream since ``since`` was asked for.

    Read from the runs table, so a "Sync now" that any worker (or ``hub sync``) handled
    reaches the lease holder's schedule.
    """
    rows = session.execute(
        sa.select(
            col(SyncRun.integration_id), col(SyncRun.stream), sa.func.max(col(SyncRun.created_at))
        )
        .where(col(SyncRun.trigger) == RunTrigger.MANUAL.value, col(SyncRun.created_at) >= since)
        .group_by(col(SyncRun.integration_id), col(SyncRun.stream))
    ).all()
    return {
        job_id(integration_id, stream): moment.replace(tzinfo=moment.tzinfo or UTC)
        for integration_id, stream, moment in rows
        if moment is not None
    }


def _same_schedule(trigger: BaseTrigger, wanted: BaseTrigger) -> bool:
    """Whether a job's trigger already runs on the wanted schedule (jitter aside)."""
    if isinstance(trigger, IntervalTrigger) and isinstance(wanted, IntervalTrigger):
        return trigger.interval == wanted.interval
    return type(trigger) is type(wanted) and str(trigger) == str(wanted)


def _apply_jobs(
    scheduler: AsyncIOScheduler,
    wanted: dict[str, JobSpec],
    manual: dict[str, datetime] | None = None,
) -> dict[str, datetime | None]:
    """Add, change and remove jobs to match ``wanted``; returns every job's next run.

    A new interval job runs soon; a job whose schedule was edited runs next on its new
    schedule counted from now (an interval) or at the cron's next time, without waiting for
    its old next run. After a manual run of an interval stream, its next scheduled run is a
    full interval after it. The job store is read once and written in one transaction.
    """
    current = {job.id: job for job in scheduler.get_jobs()}
    removed = [jid for jid in current if jid.startswith(JOB_PREFIX) and jid not in wanted]
    now = datetime.now(UTC)
    added = []
    for jid, spec in wanted.items():
        job = current.get(jid)
        try:
            trigger = schedules.trigger_for(
                minutes=spec.minutes, cron=spec.cron, seconds_per_minute=MINUTE
            )
        except ValueError as error:  # a cron edited by hand in the database: skip only it
            log.warning("stream %s has an unusable schedule (%s); not scheduled", jid, error)
            continue
        if job is not None and _same_schedule(job.trigger, trigger):
            continue
        if job is None and spec.cron is None:
            seconds = spec.minutes * MINUTE
            first_run = now + timedelta(seconds=min(seconds, 5))
        else:
            first_run = trigger.get_next_fire_time(None, now)
        added.append((jid, spec, trigger, first_run))
    if not (removed or added or manual):
        return {job.id: job.next_run_time for job in current.values()}
    with _batched(scheduler, current.values()):
        for jid in removed:
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(jid)
            current.pop(jid)
        for jid, spec, trigger, first_run in added:
            current[jid] = scheduler.add_job(
                scheduled_sync,
                trigger=trigger,
                args=[spec.integration_id, spec.stream],
                id=jid,
                name=f"sync {spec.stream} of {spec.integration_id}",
                replace_existing=True,
                next_run_time=first_run,
            )
        for job in current.values():
            asked = (manual or {}).get(job.id)
            if (
                asked is None
                or job.next_run_time is None
                or not isinstance(job.trigger, IntervalTrigger)
            ):
                continue
            rebased = asked + job.trigger.interval
            if job.next_run_time < rebased - timedelta(seconds=1):
                job.modify(next_run_time=rebased)
    return {job.id: job.next_run_time for job in current.values()}


@contextlib.contextmanager
def _batched(scheduler: AsyncIOScheduler, known: Iterable[Job]) -> Iterator[None]:
    """The job store's writes inside go to the database in one transaction
    (``BatchingJobStore``); job processing pauses meanwhile, so that thousands of changes do
    not each wake the scheduler on the event loop to read the store."""
    store = scheduler._lookup_jobstore("default")
    running = scheduler.state == STATE_RUNNING
    if running:
        scheduler.pause()
    try:
        if isinstance(store, BatchingJobStore):
            with store.batch(known):
                yield
        else:
            yield
    finally:
        if running:
            scheduler.resume()


def _rebase_missed(scheduler: AsyncIOScheduler, *, now: datetime | None = None) -> list[str]:
    """Jobs whose run fell due while no process held the lease fire once, now, and the next
    run follows a full interval after it. Left alone, APScheduler would fire the missed run
    and then the next one on the old grid: seconds apart after a takeover. Returns their ids."""
    now = now or datetime.now(UTC)
    missed = [job for job in scheduler.get_jobs() if job.next_run_time and job.next_run_time < now]
    if missed:
        with _batched(scheduler, missed):
            for job in missed:
                job.modify(next_run_time=now)
    return [job.id for job in missed]


def _store_next_runs(session: Session, next_runs: dict[str, datetime | None]) -> None:
    """Write the next runs that changed, in one executemany (thousands of streams on a
    network database would otherwise cost a round trip each)."""
    table = StreamConfig.__table__  # type: ignore[attr-defined]
    current = session.execute(
        sa.select(table.c.id, table.c.integration_id, table.c.stream, table.c.next_run_at)
    ).all()
    changed = []
    for row in current:
        value = next_runs.get(job_id(row.integration_id, row.stream))
        if _second(row.next_run_at) != _second(value):
            changed.append({"config_id": row.id, "next_run_at": value})
    if changed:
        session.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("config_id"))
            .values(next_run_at=sa.bindparam("next_run_at")),
            changed,
        )


def _second(moment: datetime | None) -> datetime | None:
    """Compare at whole seconds, in UTC: databases round and convert differently."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


_scheduler: HubScheduler | None = None


def get_scheduler() -> HubScheduler | None:
    return _scheduler


def poke() -> None:
    if _scheduler is not None:
        _scheduler.poke()


@contextlib.asynccontextmanager
async def scheduler_lifespan() -> AsyncIterator[None]:
    """Lifespan task: compete for the lease and, while this process holds it, schedule."""
    global _scheduler
    from dashboard.settings import get_settings

    stop = asyncio.Event()
    task = None
    if get_settings().scheduler_enabled:
        _scheduler = HubScheduler()
        task = asyncio.get_running_loop().create_task(_scheduler.run(stop))
    try:
        yield
    finally:
        stop.set()
        if _scheduler is not None:
            _scheduler.poke()
        if task is not None:
            await asyncio.wait([task], timeout=10)
        _scheduler = None
