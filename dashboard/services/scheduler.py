"""Scheduled syncs: APScheduler 3 in the backend process, jobs stored in the hub database.

With several processes (web workers, ``hub worker``s on other hosts) each runs the lifespan,
but only the holder of the database lease (a row in ``scheduler_leases``, renewed every
``RENEW_EVERY`` seconds, taken over once it expires) schedules: it decides what is due and
queues it, and whichever process has room claims and runs it (``sync``). Crash recovery does
not depend on the lease: every process runs it (``sync_supervisor``). A process killed while
holding the lease is replaced within ``LEASE_TTL + RENEW_EVERY`` (25 s); the new holder fires
each missed run once and schedules the next a full interval after it. Runs falling due
together by the thousand (after an outage, or streams added at once) are spread out
(``RELEASE_PER_SECOND``), so that they do not come due together again every interval.
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
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
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
# Runs falling due together (a reconcile adding thousands of streams, a takeover after an
# outage) are released at most this many per second, over at most each stream's interval.
# Queued at once they would only wait their turn in the queue, and the streams would stay in
# lockstep (each next run comes an interval after the last), bringing the herd back every
# interval: measured with ``bench/scale.py --sustain``. About what two workers run per
# second there; a faster hub still drains in time, a slower one gets an interval's worth.
RELEASE_PER_SECOND = 20.0


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
    except asyncio.CancelledError:
        # The scheduler stops (a deploy, the lease lost) while this run is being queued. Its
        # transaction commits or rolls back in its database thread; if it rolled back, the
        # stream runs at its next time. APScheduler would log a traceback per such job.
        log.info("scheduler stopped while queueing %s/%s", integration_id, stream)


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
        select(
            StreamConfig.integration_id,
            StreamConfig.stream,
            StreamConfig.interval_minutes,
            StreamConfig.cron,
        )  # the columns only: 30,000 ORM objects cost a second per reconcile
        .join(Integration, col(Integration.id) == col(StreamConfig.integration_id))
        .where(col(StreamConfig.enabled).is_(True), col(StreamConfig.paused).is_(False))
        .where(col(Integration.status).in_(sync.SYNCABLE))
    ).all()
    return {
        job_id(integration_id, stream): JobSpec(str(integration_id), stream, minutes, cron)
        for integration_id, stream, minutes, cron in rows
    }  # fmt: skip


class _AsyncIOScheduler(AsyncIOScheduler):
    """APScheduler's, minus a race when it stops: ``shutdown(wait=False)`` runs on the loop's
    next turn, and a wakeup that a timer queued behind it then processed the stopped
    scheduler's jobs and failed on its event loop, gone (asyncio logged "'NoneType' object
    has no attribute 'call_later'" when a lease holder with 3,000 jobs stopped)."""

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()  # type: ignore[no-any-return]


class HubScheduler:
    def __init__(self, *, holder: str | None = None) -> None:
        self.holder = holder or sync.worker_id()
        self.scheduler: AsyncIOScheduler | None = None
        self._wake = asyncio.Event()
        # job id -> the schedule its job runs on, as this lease term wrote or read it
        self._schedules: dict[str, Schedule | None] = {}

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    async def _start_scheduler(self) -> None:
        store = BatchingJobStore(engine=get_db_engine(), tablename="apscheduler_jobs")
        scheduler = _AsyncIOScheduler(
            jobstores={"default": store},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
            timezone=UTC,
        )
        scheduler.start(paused=True)
        await asyncio.to_thread(_rebase_missed, scheduler)
        scheduler.resume()
        self.scheduler = scheduler
        self._schedules = {}
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
        next_runs = await asyncio.to_thread(_apply_jobs, scheduler, wanted, manual, self._schedules)
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


Schedule = tuple[str, int | str]


def _schedule(spec: JobSpec) -> Schedule:
    """What a job's trigger is built from: its cron expression, else its interval."""
    return ("cron", spec.cron) if spec.cron is not None else ("every", spec.minutes)


def _apply_jobs(
    scheduler: AsyncIOScheduler,
    wanted: dict[str, JobSpec],
    manual: dict[str, datetime] | None = None,
    schedules_seen: dict[str, Schedule | None] | None = None,
) -> dict[str, datetime | None]:
    """Add, change and remove jobs to match ``wanted``; returns every job's next run.

    A new interval job runs soon; a job whose schedule was edited runs next on its new
    schedule counted from now (an interval) or at the cron's next time, without waiting for
    its old next run. After a manual run of an interval stream, its next scheduled run is a
    full interval after it.

    ``schedules_seen`` (job id -> schedule, kept by the caller between reconciles) spares
    reading and unpickling every job: at 30,000 jobs that took most of a 5.8 s steady-state
    reconcile. Only the store's ids and next run times are read (two columns); the jobs
    themselves only when the ids differ from what was seen (the first reconcile of a lease
    term). Writes go to the store in one transaction (``_batched``).
    """
    seen = {} if schedules_seen is None else schedules_seen
    next_runs = _store_of(scheduler).next_run_times()
    if set(seen) != set(next_runs):
        seen.clear()
        for job in scheduler.get_jobs():
            spec = wanted.get(job.id)
            same = spec is not None and _same_schedule(job.trigger, _trigger(spec))
            seen[job.id] = _schedule(spec) if spec is not None and same else None
    removed = [jid for jid in next_runs if jid.startswith(JOB_PREFIX) and jid not in wanted]
    now = datetime.now(UTC)
    # New interval jobs run soon, released RELEASE_PER_SECOND when many come at once.
    brand_new = [jid for jid, spec in wanted.items() if jid not in next_runs and spec.cron is None]
    release_order = {jid: position for position, jid in enumerate(brand_new)}
    added = []
    for jid, spec in wanted.items():
        if jid in seen and seen[jid] == _schedule(spec):
            continue
        try:
            trigger = _trigger(spec)
        except ValueError as error:  # a cron edited by hand in the database: skip only it
            log.warning("stream %s has an unusable schedule (%s); not scheduled", jid, error)
            continue
        if jid not in next_runs and spec.cron is None:
            interval = timedelta(seconds=spec.minutes * MINUTE)
            soon = now + min(interval, timedelta(seconds=5))
            first_run = soon + _spread(release_order[jid], len(brand_new), interval)
        else:
            first_run = trigger.get_next_fire_time(None, now)
        added.append((jid, spec, trigger, first_run))
    rebased = {}
    for jid, asked in (manual or {}).items():
        spec, next_run = wanted.get(jid), next_runs.get(jid)
        if spec is None or spec.cron is not None or next_run is None:
            continue
        later = asked + timedelta(seconds=spec.minutes * MINUTE)
        if next_run < later - timedelta(seconds=1):
            rebased[jid] = later
    if not (removed or added or rebased):
        return next_runs
    with _batched(scheduler, ()):
        for jid in removed:
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(jid)
            next_runs.pop(jid, None)
            seen.pop(jid, None)
        for jid, spec, trigger, first_run in added:
            job = scheduler.add_job(
                scheduled_sync,
                trigger=trigger,
                args=[spec.integration_id, spec.stream],
                id=jid,
                name=f"sync {spec.stream} of {spec.integration_id}",
                replace_existing=True,
                next_run_time=first_run,
            )
            next_runs[jid], seen[jid] = job.next_run_time, _schedule(spec)
            rebased.pop(jid, None)
            manual_at = (manual or {}).get(jid)
            if manual_at is not None and spec.cron is None:  # a manual run just before
                after_it = manual_at + timedelta(seconds=spec.minutes * MINUTE)
                if job.next_run_time < after_it - timedelta(seconds=1):
                    rebased[jid] = after_it
        for jid, later in rebased.items():
            if jid in next_runs:
                scheduler.modify_job(jid, next_run_time=later)
                next_runs[jid] = later
    return next_runs


def _trigger(spec: JobSpec) -> BaseTrigger:
    return schedules.trigger_for(minutes=spec.minutes, cron=spec.cron, seconds_per_minute=MINUTE)


def _store_of(scheduler: AsyncIOScheduler) -> BatchingJobStore:
    store = scheduler._lookup_jobstore("default")
    assert isinstance(store, BatchingJobStore)
    return store


@contextlib.contextmanager
def _batched(scheduler: AsyncIOScheduler, known: Iterable[Job]) -> Iterator[None]:
    """The job store's writes inside go to the database in one transaction
    (``BatchingJobStore``); job processing pauses meanwhile, so that thousands of changes do
    not each wake the scheduler on the event loop to read the store."""
    running = scheduler.state == STATE_RUNNING
    if running:
        scheduler.pause()
    try:
        with _store_of(scheduler).batch(known):
            yield
    finally:
        if running:
            scheduler.resume()


def _rebase_missed(scheduler: AsyncIOScheduler, *, now: datetime | None = None) -> list[str]:
    """Jobs whose run fell due while no process held the lease fire once, from now on (the
    longest overdue first, ``RELEASE_PER_SECOND``), and the next run follows a full interval
    after it. Left alone, APScheduler would fire the missed run and then the next one on the
    old grid: seconds apart after a takeover. Returns their ids."""
    now = now or datetime.now(UTC)
    missed = sorted(
        (job for job in scheduler.get_jobs() if job.next_run_time and job.next_run_time < now),
        key=lambda job: job.next_run_time,
    )
    if missed:
        with _batched(scheduler, missed):
            for position, job in enumerate(missed):
                period = _period(job.trigger, now)
                job.modify(next_run_time=now + _spread(position, len(missed), period))
    return [job.id for job in missed]


def _spread(position: int, count: int, period: timedelta) -> timedelta:
    """How long after the first of ``count`` runs falling due together the one at
    ``position`` is released: ``RELEASE_PER_SECOND``, but all within ``period``."""
    return min(timedelta(seconds=position / RELEASE_PER_SECOND), period * (position / count))


def _period(trigger: BaseTrigger, now: datetime) -> timedelta:
    """A job's interval; for a cron, the time until its next regular run."""
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval  # type: ignore[no-any-return]
    upcoming = trigger.get_next_fire_time(None, now)
    return timedelta(0) if upcoming is None else max(upcoming - now, timedelta(0))


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
