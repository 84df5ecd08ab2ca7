"""Any process runs any run: queued runs without an owner are claimed oldest first by the
processes with room, never twice (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and the change
feed wakes the processes at once: in process on SQLite, over PostgreSQL LISTEN/NOTIFY and over
Redis pub/sub between processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import col, select

from connectors.base import Batch
from dashboard.db import in_write_session, session_scope
from dashboard.models import HubWorker, SyncRun
from dashboard.services import sync, sync_claims
from dashboard.services.changefeed import LIVE, QUEUE, ChangeFeed, get_feed
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync_claims import claim_queued
from dashboard.services.sync_queue import _queue_runs
from dashboard.services.sync_waits import wait_finished
from dashboard.services.sync_workers import beat
from dashboard.settings import get_settings
from tests.claims_helpers import SHOPIFY_STREAMS, queue_shop, set_queued_at, shop_of
from tests.fake_connector import FakeConnector

REDIS_URL = "redis://127.0.0.1:6379/8"


def queue_for(count: int) -> list[uuid.UUID]:
    """One integration per run, each run queued for any process, oldest first."""
    run_ids = []
    for number in range(count):
        with session_scope() as s:
            integration = create_integration(
                session=s, platform="shopify", display_name=f"Shop {number}",
                shop_domain=f"shop-{number}.myshopify.com", streams={"products": 15},
            )  # fmt: skip
            mark_connected(session=s, integration_id=integration.id)
            [run_id] = _queue_runs(s, integration.id, None, "schedule", False)
            run_ids.append(run_id)
    with session_scope() as s:  # distinct queue times, in creation order
        start = datetime.now(UTC) - timedelta(minutes=1)
        for index, run_id in enumerate(run_ids):
            set_queued_at(s, run_id, start + timedelta(seconds=index))
    return run_ids


def owners(run_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    with session_scope() as s:
        rows = s.exec(select(SyncRun.id, SyncRun.worker).where(col(SyncRun.id).in_(run_ids)))
        return dict(rows.all())


async def test_a_process_claims_as_many_as_it_has_room_for_oldest_first(any_db: str) -> None:
    run_ids = queue_for(5)
    engine = sync.SyncEngine(
        max_concurrency=2, connector_factory=lambda _: FakeConnector(total=10, page_size=5)
    )
    engine.worker = "host-a:1"
    claimed = await engine.claim()
    assert claimed == run_ids[:2]  # the two that waited longest
    assert await engine.claim() == []  # no room left
    # No supervisor here: as runs end, the engine claims the next ones itself, in order.
    await engine.wait()
    with session_scope() as s:
        runs = {r.id: r for r in s.exec(select(SyncRun).where(col(SyncRun.id).in_(run_ids)))}
    assert {runs[r].worker for r in run_ids} == {"host-a:1"}
    assert {runs[r].status for r in run_ids} == {"succeeded"}
    starts = [runs[r].started_at for r in run_ids]
    assert starts[2] >= min(runs[r].finished_at for r in run_ids[:2])  # waited for room
    assert starts[2:] == sorted(starts[2:])  # the oldest queued first


@pytest.mark.postgres
async def test_processes_claiming_at_once_never_take_the_same_run(pg_hub_db) -> None:
    run_ids = queue_for(40)

    async def claim(worker: str) -> list[uuid.UUID]:
        taken: list[uuid.UUID] = []
        for _ in range(10):
            taken += await in_write_session(lambda s: claim_queued(s, worker=worker, limit=3))
        return taken

    results = await asyncio.gather(*(claim(f"host-{n}:1") for n in range(4)))
    every = [run_id for taken in results for run_id in taken]
    assert sorted(every) == sorted(run_ids)  # all claimed, none twice
    assert all(results), "a process got nothing: the claims waited on each other's locks"
    claimed_by = owners(run_ids)
    for number, taken in enumerate(results):
        assert {claimed_by[r] for r in taken} == {f"host-{number}:1"}


async def test_a_flood_from_one_integration_does_not_starve_another_s_single_run(
    any_db: str,
) -> None:
    """A shop queued all four streams ten minutes ago, another five minutes ago, a quiet
    shop one run now. Claims go oldest first, but never more than HUB_SYNC_PER_INTEGRATION
    (2) runs of one shop at once in any process: the rest of the room serves the others, so
    the quiet shop waits behind two runs of each, not behind their whole backlogs."""
    assert get_settings().sync_per_integration == 2
    now = datetime.now(UTC)
    flood = queue_shop("Flood", SHOPIFY_STREAMS, queued_at=now - timedelta(minutes=10))
    busy = queue_shop("Busy", SHOPIFY_STREAMS, queued_at=now - timedelta(minutes=5))
    [quiet] = queue_shop("Quiet", {"orders": 5}, queued_at=now)

    async def claim(worker: str, room: int) -> list[uuid.UUID]:
        return await in_write_session(lambda s: claim_queued(s, worker=worker, limit=room))

    assert await claim("host-a:1", 3) == [flood[0], flood[1], busy[0]]
    # Another process with plenty of room: Busy's second run and the quiet one; the two
    # shops' other streams wait although it has room, as each has 2 running.
    second = await claim("host-b:1", 8)
    assert (second, shop_of(second)) == ([busy[1], quiet], ["Busy", "Quiet"])
    assert await claim("host-b:1", 8) == []
    # One of Flood's runs ends: its next stream is the only one that may start.
    with session_scope() as s:
        s.execute(
            sa.update(SyncRun.__table__)  # type: ignore[attr-defined]
            .where(SyncRun.__table__.c.id == flood[0])  # type: ignore[attr-defined]
            .values(status="succeeded", finished_at=datetime.now(UTC))
        )
    assert await claim("host-a:1", 8) == [flood[2]]


async def test_a_claim_looks_past_old_runs_held_back_by_the_cap(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim first reads only the oldest queued runs; when those all belong to shops at
    their cap, it reads on and still finds the quiet shop's run."""
    monkeypatch.setattr(sync_claims, "WINDOW", 0)  # the window: as many runs as there is room
    busy = queue_shop("Busy", SHOPIFY_STREAMS, queued_at=datetime.now(UTC) - timedelta(hours=1))
    [quiet] = queue_shop("Quiet", {"orders": 5}, queued_at=datetime.now(UTC))
    claims = [
        await in_write_session(lambda s: claim_queued(s, worker="host-a:1", limit=1))
        for _ in range(4)
    ]
    # The window (the one oldest run) holds Busy's first, then its second; then only its
    # third, held back by the cap, and the claim reads on to Quiet's.
    assert claims == [busy[:1], busy[1:2], [quiet], []]


class CountingConnector(FakeConnector):
    """Counts the streams it reads at once (they all belong to one integration here)."""

    def __init__(self) -> None:
        super().__init__(total=30, page_size=10)
        self.reading = self.most = 0

    async def read_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Batch]:
        self.reading += 1
        self.most = max(self.most, self.reading)
        try:
            async for batch in super().read_stream(*args, **kwargs):
                await asyncio.sleep(0.05)  # a platform's answer: the runs overlap
                yield batch
        finally:
            self.reading -= 1


def connected_shop() -> uuid.UUID:
    """A connected shop with its four streams."""
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Shop",
            shop_domain="shop.myshopify.com", streams=SHOPIFY_STREAMS,
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        return integration.id


async def test_runs_a_process_queues_for_itself_keep_the_per_integration_cap(
    any_db: str,
) -> None:
    """`hub sync --wait` and a crash recovery's retries queue runs for their own process.
    They take turns like every queued run: never more than HUB_SYNC_PER_INTEGRATION (2) of
    the shop's four streams at once, though the process has room for all, and every one
    ends, started here as the earlier ones end."""
    assert get_settings().sync_per_integration == 2
    integration_id = connected_shop()
    connector = CountingConnector()
    engine = sync.SyncEngine(max_concurrency=8, connector_factory=lambda _: connector)
    run_ids = await engine.request_sync(integration_id=integration_id)
    assert len(run_ids) == 4
    await wait_finished(engine, run_ids)
    with session_scope() as s:
        runs = s.exec(select(SyncRun).where(col(SyncRun.id).in_(run_ids))).all()
    assert {(run.status, run.worker, run.records_read) for run in runs} == {
        ("succeeded", engine.worker, 30)
    }
    assert connector.most == 2


async def test_held_runs_start_though_a_claim_as_runs_end_takes_none(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim made as a run ends can take nothing and still be wrong a moment later: on
    PostgreSQL it skips an integration row another transaction holds for a moment, or it
    counts a run of the same integration whose end is not committed yet. If that run then
    ends while the claim is still out, no run of this process is left to end and claim again:
    the whole suite caught `engine.wait()` returning with a stream still queued. Simulated
    here: the first claim after a run ends waits until the other run has ended too, and
    takes nothing."""
    integration_id = connected_shop()
    connector = CountingConnector()
    calls = 0

    def first_after_an_end_takes_none(session: Any, **kwargs: Any) -> list[uuid.UUID]:
        nonlocal calls
        calls += 1
        if calls == 2:  # 1: the request's own claim; 2: the first as a run ends
            deadline = time.monotonic() + 5
            while connector.reading and time.monotonic() < deadline:
                time.sleep(0.01)  # (a database thread) the other run ends meanwhile
            return []
        return claim_queued(session, **kwargs)

    monkeypatch.setattr(sync, "claim_queued", first_after_an_end_takes_none)
    engine = sync.SyncEngine(max_concurrency=8, connector_factory=lambda _: connector)
    run_ids = await engine.request_sync(integration_id=integration_id)
    await asyncio.wait_for(engine.wait(), timeout=30)
    with session_scope() as s:
        runs = s.exec(select(SyncRun).where(col(SyncRun.id).in_(run_ids))).all()
    assert sorted(run.status for run in runs) == ["succeeded"] * 4
    assert calls > 2


@pytest.mark.postgres
async def test_processes_claiming_at_once_never_exceed_the_per_integration_cap(
    pg_hub_db,
) -> None:
    """Four processes claim side by side from forty shops with four queued streams each:
    each shop ends with exactly its two oldest runs claimed, none claimed twice, and every
    process got some (80 to take: no process waited out the others' locks)."""
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    queued = {
        n: queue_shop(f"Shop {n}", SHOPIFY_STREAMS, queued_at=long_ago + timedelta(seconds=n))
        for n in range(40)
    }

    async def claim(worker: str) -> list[uuid.UUID]:
        """Claim 3 at a time until three claims in a row take nothing: a claim skips the
        shops another one holds locked at that moment, so one empty claim is not the end."""
        taken: list[uuid.UUID] = []
        empty = 0
        while empty < 3 and len(taken) < 96:
            got = await in_write_session(lambda s: claim_queued(s, worker=worker, limit=3))
            taken += got
            empty = 0 if got else empty + 1
            await asyncio.sleep(0)
        return taken

    results = await asyncio.gather(*(claim(f"host-{n}:1") for n in range(4)))
    every = [run_id for taken in results for run_id in taken]
    assert len(every) == len(set(every)) == 80  # two per shop, none twice
    for runs in queued.values():
        assert len(set(runs[:2]) & set(every)) == 2  # each shop's two oldest
    assert all(results), "a process got nothing: the claims waited on each other's locks"


async def test_a_run_claimed_by_a_process_that_died_before_starting_it_runs_elsewhere(
    any_db: str,
) -> None:
    """A process claimed two runs and was killed before starting them; a live process
    claimed one just now and one two minutes ago that it never started (its start failed).
    The sweep of another process hands the dead one's runs and the forgotten one back to the
    queue, its claim starts them, and the live process's fresh claim stays its own."""
    dead_owner, live_owner = "host-gone:1", "host-live:2"
    runs = queue_for(4)
    with session_scope() as s:
        for worker in (dead_owner, live_owner):
            beat(s, worker=worker, kind="worker", capacity=8, running=0)
        s.execute(
            sa.update(HubWorker.__table__)  # type: ignore[attr-defined]
            .where(HubWorker.__table__.c.id == dead_owner)  # type: ignore[attr-defined]
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    now = datetime.now(UTC)
    claims = [(dead_owner, now), (dead_owner, now), (live_owner, now)]
    claims.append((live_owner, now - timedelta(minutes=2)))
    for run_id, (worker, claimed_at) in zip(runs, claims, strict=True):
        await in_write_session(
            lambda s, run_id=run_id, worker=worker, claimed_at=claimed_at: s.execute(
                sa.update(SyncRun.__table__)  # type: ignore[attr-defined]
                .where(SyncRun.__table__.c.id == run_id)  # type: ignore[attr-defined]
                .values(worker=worker, heartbeat_at=claimed_at)
            )
        )
    rescuer = sync.SyncEngine(connector_factory=lambda _: FakeConnector(total=10, page_size=5))
    rescuer.worker = "host-a:1"
    assert await rescuer.recover_interrupted() == []  # nothing was running: no retries
    assert owners(runs) == {runs[0]: None, runs[1]: None, runs[2]: live_owner, runs[3]: None}
    assert await rescuer.claim() == [runs[0], runs[1], runs[3]]
    await rescuer.wait()
    with session_scope() as s:
        done = {r.id: (r.status, r.worker) for r in s.exec(select(SyncRun))}
    assert done[runs[0]] == done[runs[1]] == done[runs[3]] == ("succeeded", "host-a:1")
    assert done[runs[2]] == ("queued", live_owner)


async def test_a_run_queued_anywhere_is_started_by_a_process_with_room_at_once(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queueing commit wakes the claim (the feed), long before the fallback look."""
    monkeypatch.setattr(sync, "HANDOVER_EVERY", 30.0)
    monkeypatch.setattr(sync, "RECOVERY_EVERY", 3600.0)
    hub = sync.SyncEngine(connector_factory=lambda _: FakeConnector(total=10, page_size=5))
    hub.worker = "host-a:1"
    sync.set_engine(hub)
    try:
        async with sync.engine_lifespan():
            await asyncio.sleep(0.2)  # the supervisor waits for the feed now
            began = time.monotonic()
            [run_id] = queue_for(1)
            while owners([run_id])[run_id] is None:
                assert time.monotonic() - began < 5, "not claimed within 5 s"
                await asyncio.sleep(0.02)
            # Until it has ended in the database: the claim commits before the engine holds
            # the run's task, and a wait on the engine's tasks alone could return before it
            # (the run, stopped with the engine, then went back to the queue).
            await wait_finished(hub, [run_id], poll=0.05)
    finally:
        sync.set_engine(None)
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None and (run.status, run.worker) == ("succeeded", "host-a:1")


async def test_committed_writes_feed_the_live_topic_but_session_touches_do_not(hub_db) -> None:
    feed = get_feed()
    live, queue = feed.version(LIVE), feed.version(QUEUE)
    queue_for(1)
    await asyncio.sleep(0.05)  # the bump is handed to the loop from the database thread
    assert feed.version(LIVE) > live and feed.version(QUEUE) > queue
    live = feed.version(LIVE)
    for _ in range(2):  # a liveness beat inserts, then updates, a row no page shows
        with session_scope() as s:
            beat(s, worker="host-a:1", kind="worker", capacity=8, running=0)
    await asyncio.sleep(0.05)
    assert feed.version(LIVE) == live


async def two_feeds_hear_each_other(**backend: str | None) -> float:
    sender, listener = ChangeFeed(), ChangeFeed()
    await sender.start(**backend)  # type: ignore[arg-type]
    await listener.start(**backend)  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.3)  # subscribed
        seen = listener.version(QUEUE)
        began = time.monotonic()
        sender.changed(QUEUE)
        assert await listener.wait(QUEUE, seen, at_most=10.0) > seen
        return time.monotonic() - began
    finally:
        await sender.stop()
        await listener.stop()


@pytest.mark.postgres
async def test_the_feed_crosses_processes_over_postgres_listen_notify(pg_hub_db) -> None:
    database_url = get_settings().sqlalchemy_url
    took = await two_feeds_hear_each_other(redis_url=None, database_url=database_url)
    assert took < 2.0


async def test_the_feed_crosses_processes_over_redis_pubsub(hub_db) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {type(error).__name__}")
    took = await two_feeds_hear_each_other(redis_url=REDIS_URL, database_url="sqlite://")
    assert took < 2.0


def commit_from_another_process(database: str) -> None:
    """A commit through a connection of its own, not the hub's engine: as `hub sync` would."""
    import sqlite3

    other = sqlite3.connect(database)
    with other:
        other.execute("UPDATE integrations SET display_name = display_name")
        other.execute("CREATE TABLE IF NOT EXISTS bench_marker (id INTEGER)")
    other.close()


async def test_on_sqlite_another_process_s_commit_wakes_the_feed(hub_db) -> None:
    """The embedded default has no server to notify through: the feed watches SQLite's
    data_version, which moves when another connection (here: another process's) commits."""
    database = sa.engine.make_url(get_settings().sqlalchemy_url).database
    assert database
    feed = ChangeFeed()
    await feed.start(redis_url=None, database_url=get_settings().sqlalchemy_url)
    try:
        await asyncio.sleep(0.5)  # the watch has read the version
        seen = feed.version(LIVE)
        commit_from_another_process(database)
        began = time.monotonic()
        assert await feed.wait(LIVE, seen, at_most=5.0) > seen
        assert time.monotonic() - began < 2.0
    finally:
        await feed.stop()


async def test_on_sqlite_another_process_s_commit_beside_one_of_ours_still_wakes_pages(
    hub_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process commits (waking its pages at once) and another process commits within
    the same look at data_version: the pages may have read before the other commit, so the
    watch wakes them once more instead of leaving the change to the 5 s fallback."""
    from dashboard.services import changefeed

    monkeypatch.setattr(changefeed, "SQLITE_LOOK_EVERY", 0.5)  # one wide look
    database = sa.engine.make_url(get_settings().sqlalchemy_url).database
    assert database
    feed = ChangeFeed()
    await feed.start(redis_url=None, database_url=get_settings().sqlalchemy_url)
    try:
        await asyncio.sleep(0.6)  # the watch has read the version
        feed._local_writes += 1  # what a commit of this process does (``_on_commit``)
        feed.changed(LIVE)
        seen = feed.version(LIVE)  # the pages woke and read
        commit_from_another_process(database)
        began = time.monotonic()
        assert await feed.wait(LIVE, seen, at_most=5.0) > seen
        assert time.monotonic() - began < 2.0
    finally:
        await feed.stop()
