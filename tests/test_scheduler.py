"""Scheduling: jobs follow the stream configs, survive restarts, and one process leads."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import Session, SQLModel, func, select

from dashboard.db import get_engine, session_scope
from dashboard.models import RunTrigger, SchedulerLease, StreamConfig, SyncRun
from dashboard.services import scheduler as scheduler_module
from dashboard.services import sync
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.scheduler import HubScheduler, job_id, lease_holder, try_acquire_lease
from dashboard.services.scheduler_store import BatchingJobStore
from tests.fake_connector import FakeConnector


def connected_integration(session: Session, name: str = "acme") -> uuid.UUID:
    integration = create_integration(
        session=session, platform="shopify", display_name=name,
        shop_domain=f"{name}.myshopify.com", streams={"products": 5},
    )  # fmt: skip
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    return integration.id


@pytest.fixture
def fast_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "MINUTE", 0.06)  # a 5-minute stream runs every 0.3 s


@pytest.fixture
async def fake_engine():
    """A hub process's engine: it claims the runs the scheduler queues for any process."""
    engine = sync.SyncEngine(
        connector_factory=lambda _: FakeConnector(total=5), retry_delays=(0.01,)
    )
    sync.set_engine(engine)
    try:
        async with sync.engine_lifespan():
            yield engine
    finally:
        sync.set_engine(None)


def count_runs(trigger: str | None = None) -> int:
    with session_scope() as s:
        query = select(func.count()).select_from(SyncRun)
        if trigger:
            query = query.where(SyncRun.trigger == trigger)
        return int(s.exec(query).one())


def run_times() -> list[datetime]:
    with session_scope() as s:
        return sorted(r.created_at for r in s.exec(select(SyncRun)).all())


def test_lease_is_exclusive_and_taken_over_when_it_expires(session: Session) -> None:
    assert try_acquire_lease(session, "worker-a")
    assert not try_acquire_lease(session, "worker-b")
    assert try_acquire_lease(session, "worker-a")  # renewal
    later = datetime.now(UTC) + timedelta(minutes=5)  # worker-a died and stopped renewing
    assert try_acquire_lease(session, "worker-b", now=later)
    assert not try_acquire_lease(session, "worker-a", now=later)


def test_lease_says_since_when_its_holder_holds_it(session: Session) -> None:
    """``acquired_at`` moves on a takeover, not on a renewal: it tells an operator when the
    scheduler last changed hands."""
    start = datetime.now(UTC)
    assert try_acquire_lease(session, "host-a:1", now=start)
    assert try_acquire_lease(session, "host-a:1", now=start + timedelta(seconds=5))
    lease = session.get(SchedulerLease, "scheduler")
    assert lease is not None and lease.acquired_at == start
    takeover = start + timedelta(minutes=2)  # host-a died and stopped renewing
    assert try_acquire_lease(session, "host-b:2", now=takeover)
    session.expire_all()
    lease = session.get(SchedulerLease, "scheduler")
    assert lease is not None
    assert (lease.holder, lease.acquired_at) == ("host-b:2", takeover)
    assert lease.expires_at == takeover + scheduler_module.LEASE_TTL


@contextlib.asynccontextmanager
async def taken_over() -> AsyncIterator[AsyncIOScheduler]:
    """host-a scheduled the streams and died; host-b holds the lease now, its scheduler
    paused so that the test says when time has passed (``_rebase_missed(now=...)``)."""
    first = HubScheduler(holder="host-a:1")
    await first._start_scheduler()
    await first.reconcile()
    first._stop_scheduler()
    second = HubScheduler(holder="host-b:2")
    await second._start_scheduler()
    try:
        assert second.scheduler is not None
        second.scheduler.pause()
        yield second.scheduler
    finally:
        second._stop_scheduler()


async def test_after_a_takeover_a_missed_run_fires_once_and_the_next_a_full_interval_later(
    session,
) -> None:
    """The lease was free for a while: the new holder fires each stream's missed run now and
    the next one a full interval after it, not on the dead holder's grid (seconds later)."""
    integration_id = connected_integration(session)  # products every minute
    async with taken_over() as scheduler:
        job = scheduler.get_job(job_id(integration_id, "products"))
        due = job.next_run_time
        later = due + timedelta(seconds=150)  # 2.5 intervals missed while nobody held it
        assert scheduler_module._rebase_missed(scheduler, now=later) == [job.id]
        job = scheduler.get_job(job.id)
        assert job.next_run_time == later  # fires once, now
        interval = timedelta(minutes=1)
        assert job.trigger.get_next_fire_time(later, later) - later >= interval
        # On the old grid the next run would have come 30 s after this one.
        assert due + 3 * interval - later == timedelta(seconds=30)
        assert scheduler_module._rebase_missed(scheduler, now=later) == []  # nothing left


async def test_runs_missed_during_an_outage_are_released_longest_overdue_first(
    session,
) -> None:
    """A hundred missed runs do not all fire at once (and then every interval together):
    ``RELEASE_PER_SECOND``, the longest overdue first, all within their interval."""
    for n in range(50):
        connected_integration(session, f"shop-{n}")
    async with taken_over() as scheduler:
        due = {job.id: job.next_run_time for job in scheduler.get_jobs()}
        later = max(due.values()) + timedelta(minutes=15)  # nobody held the lease meanwhile
        missed = scheduler_module._rebase_missed(scheduler, now=later)
        assert missed == sorted(due, key=lambda jid: due[jid])  # longest overdue first
        released = [scheduler.get_job(jid).next_run_time for jid in missed]
        assert released[0] == later  # the first fires at once
        step = timedelta(seconds=1 / scheduler_module.RELEASE_PER_SECOND)
        assert min(b - a for a, b in itertools.pairwise(released)) >= step - timedelta(
            milliseconds=1
        )
        interval = timedelta(minutes=5)
        assert released[-1] - later < interval
        # Each one's next run is then a full interval after it, not on the old grid.
        job = scheduler.get_job(missed[-1])
        assert job.trigger.get_next_fire_time(released[-1], later) - released[-1] >= interval
        assert scheduler_module._rebase_missed(scheduler, now=later) == []  # fired once


def test_lease_holder_names_a_live_hub_only(session: Session) -> None:
    """`hub sync` without --wait hands its runs to the hub only while one holds the lease."""
    assert lease_holder(session) is None
    assert try_acquire_lease(session, "hub-1")
    assert lease_holder(session) == "hub-1"
    assert lease_holder(session, now=datetime.now(UTC) + timedelta(minutes=1)) is None


async def test_scheduled_run_happens_and_repeats(session, fast_minutes, fake_engine) -> None:
    integration_id = connected_integration(session)
    hub = HubScheduler(holder="test")
    await hub._start_scheduler()
    try:
        await hub.reconcile()
        assert hub.scheduler.get_job(job_id(integration_id, "products")) is not None
        for _ in range(100):
            await asyncio.sleep(0.1)
            if count_runs(RunTrigger.SCHEDULE) >= 2:
                break
        await fake_engine.wait()
        assert count_runs(RunTrigger.SCHEDULE) >= 2
        with session_scope() as s:
            assert s.exec(select(StreamConfig)).one().next_run_at is not None
    finally:
        hub._stop_scheduler()


async def test_a_manual_sync_on_any_worker_moves_the_next_scheduled_run(
    session, fake_engine
) -> None:
    """Sync now, handled by a process that does not schedule (another worker, `hub sync`):
    the lease holder's next reconcile puts the stream's next scheduled run a full interval
    after it, as it does for a manual sync of its own."""
    integration_id = connected_integration(session)  # products every 5 minutes
    leader = HubScheduler(holder="leader")
    await leader._start_scheduler()
    try:
        await leader.reconcile()
        job = leader.scheduler.get_job(job_id(integration_id, "products"))
        first = job.next_run_time
        assert first - datetime.now(UTC) < timedelta(seconds=10)  # a new stream starts soon
        # No scheduler in this process: the run is recorded in the database only.
        assert scheduler_module.get_scheduler() is None
        before = datetime.now(UTC)
        await sync.request_sync(integration_id=integration_id, stream="products")
        await fake_engine.wait()
        await leader.reconcile()
        moved = leader.scheduler.get_job(job_id(integration_id, "products")).next_run_time
        assert before + timedelta(seconds=299) < moved < datetime.now(UTC) + timedelta(seconds=301)
        with session_scope() as s:
            stored = s.exec(select(StreamConfig)).one().next_run_at
            assert abs(stored.replace(tzinfo=UTC) - moved) < timedelta(seconds=1)
        await leader.reconcile()  # nothing more moves it
        again = leader.scheduler.get_job(job_id(integration_id, "products")).next_run_time
        assert abs(again - moved) < timedelta(seconds=1)
        # A webhook-triggered run is not a user's "Sync now": it leaves the schedule alone.
        await sync.request_sync(integration_id=integration_id, stream="products", trigger="webhook")
        await fake_engine.wait()
        await leader.reconcile()
        still = leader.scheduler.get_job(job_id(integration_id, "products")).next_run_time
        assert abs(still - moved) < timedelta(seconds=1)
    finally:
        leader._stop_scheduler()


async def test_paused_stream_loses_its_job_and_restart_keeps_schedules(session) -> None:
    integration_id = connected_integration(session)
    first = HubScheduler(holder="one")
    await first._start_scheduler()
    await first.reconcile()
    first._stop_scheduler()

    second = HubScheduler(holder="two")  # a restart: the job store is in the database
    await second._start_scheduler()
    try:
        assert second.scheduler.get_job(job_id(integration_id, "products")) is not None
        with session_scope() as s:
            sync.set_paused(
                session=s, integration_id=integration_id, stream="products", paused=True
            )
        await second.reconcile()
        assert second.scheduler.get_job(job_id(integration_id, "products")) is None
    finally:
        second._stop_scheduler()


async def _two_schedulers(seconds: float) -> tuple[HubScheduler, HubScheduler]:
    stop = asyncio.Event()
    a, b = HubScheduler(holder="a"), HubScheduler(holder="b")
    tasks = [asyncio.create_task(a.run(stop)), asyncio.create_task(b.run(stop))]
    await asyncio.sleep(seconds)
    leaders = [a.is_leader, b.is_leader]
    stop.set()
    a.poke()
    b.poke()
    await asyncio.gather(*tasks)
    assert leaders.count(True) == 1
    return a, b


async def test_only_the_leaseholder_schedules(session, fast_minutes, fake_engine) -> None:
    connected_integration(session)
    await _two_schedulers(1.5)
    await fake_engine.wait()
    times = run_times()
    assert times, "the leader scheduled nothing"
    # One job of one leader: runs never start twice at the same moment.
    assert all(
        later - earlier > timedelta(seconds=0.1) for earlier, later in itertools.pairwise(times)
    )


@pytest.mark.postgres
async def test_two_schedulers_on_postgres_run_each_job_once(
    pg_hub_db, fast_minutes, fake_engine
) -> None:
    SQLModel.metadata.create_all(get_engine())
    with session_scope() as s:
        connected_integration(s, "pg-shop")
    await _two_schedulers(2.0)
    await fake_engine.wait()
    times = run_times()
    assert times, "the leader scheduled nothing"
    assert all(
        later - earlier > timedelta(seconds=0.1) for earlier, later in itertools.pairwise(times)
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    return str(request.param)


async def test_a_reconcile_of_many_streams_writes_the_job_store_in_one_transaction(
    any_db: str,
) -> None:
    """Forty streams: while the first reconcile's batch is open another process's store
    sees none of its jobs; once it ends, every one, on the schedule the Settings tab shows.
    A failure inside a batch writes nothing; conflicts still raise as APScheduler expects."""
    with session_scope() as s:
        shops = [connected_integration(s, f"shop-{n}") for n in range(40)]
    hub = HubScheduler(holder="host-a:1")
    await hub._start_scheduler()
    other = BatchingJobStore(engine=get_engine(), tablename="apscheduler_jobs")
    try:
        scheduler = hub.scheduler
        assert scheduler is not None
        store = scheduler._lookup_jobstore("default")
        seen_inside: list[int] = []
        original = store._write

        def write(batch: object) -> None:  # the moment before the one commit
            seen_inside.append(len(other.get_all_jobs()))
            original(batch)

        store._write = write
        await hub.reconcile()
        assert seen_inside == [0]
        jobs = {job.id: job for job in other.get_all_jobs()}
        assert set(jobs) == {job_id(shop, "products") for shop in shops}
        with session_scope() as s:
            shown = {
                job_id(c.integration_id, c.stream): c.next_run_at
                for c in s.exec(select(StreamConfig))
            }
        for jid, job in jobs.items():
            assert abs(job.next_run_time - shown[jid].replace(tzinfo=UTC)) < timedelta(seconds=1)

        first = job_id(shops[0], "products")
        with pytest.raises(RuntimeError), store.batch():
            store.remove_job(first)
            raise RuntimeError("the database went away")
        assert other.lookup_job(first) is not None  # nothing was written
        with store.batch():
            with pytest.raises(ConflictingIdError):
                store.add_job(jobs[first])
            with pytest.raises(JobLookupError):
                store.remove_job("sync:no-such-stream")
            store.remove_job(first)
            with pytest.raises(JobLookupError):
                store.update_job(jobs[first])
        assert other.lookup_job(first) is None
        assert len(other.get_all_jobs()) == 39
    finally:
        hub._stop_scheduler()


async def test_stopping_while_a_due_run_is_being_queued_logs_no_error(
    session, fast_minutes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A deploy stops the lease holder while its jobs are queueing runs: that is no error, and
    the log says so in one line instead of a traceback per job."""
    caplog.set_level(logging.INFO, logger="hub.scheduler")
    connected_integration(session)
    queueing = asyncio.Event()

    async def slow_request_sync(**_: object) -> list[uuid.UUID]:
        queueing.set()
        await asyncio.sleep(30)  # the database answers slowly
        return []

    monkeypatch.setattr(sync, "request_sync", slow_request_sync)
    hub = HubScheduler(holder="test")
    await hub._start_scheduler()
    try:
        await hub.reconcile()
        await asyncio.wait_for(queueing.wait(), timeout=10)
    finally:
        hub._stop_scheduler()
    await asyncio.sleep(0.1)  # the cancelled job ends
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert "stopped while queueing" in caplog.text


async def test_a_wakeup_queued_behind_the_shutdown_does_nothing(session) -> None:
    """``shutdown(wait=False)`` runs on the loop's next turn; a timer that fires in the same
    turn queues its wakeup behind it. That wakeup must not process the stopped scheduler's
    jobs nor fail on its event loop, gone ("'NoneType' object has no attribute 'call_later'",
    seen once when a lease holder with 3,000 jobs stopped)."""
    connected_integration(session)
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    hub = HubScheduler(holder="test")
    await hub._start_scheduler()
    await hub.reconcile()
    scheduler = hub.scheduler
    assert scheduler is not None and scheduler.get_jobs()
    hub._stop_scheduler()
    scheduler.wakeup()  # as the timer's callback would, in the same turn
    await asyncio.sleep(0.1)
    assert loop_errors == []
