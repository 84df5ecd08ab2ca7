"""One active run per stream across processes: the database refuses a second, a run another
process runs is not run again, a run declared dead never writes again, and waiting follows a
run to the retry that resumes it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from dashboard.db import session_scope
from dashboard.models import (
    RunStatus,
    StreamConfig,
    SyncRun,
)
from dashboard.services import sync
from dashboard.services.sync import SyncEngine
from dashboard.services.sync_queue import _insert_run
from dashboard.services.sync_waits import wait_finished, wait_resumed
from tests.fake_connector import FakeConnector
from tests.sync_engine_helpers import engine_with, product_count, run_row


def process_engine(connector: FakeConnector, name: str) -> SyncEngine:
    """An engine standing for another hub process (its own worker id)."""
    engine = engine_with(connector)
    engine.worker = name
    return engine


def active_runs(integration_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as s:
        return list(
            s.exec(
                select(SyncRun).where(
                    SyncRun.integration_id == integration_id,
                    col(SyncRun.status).in_(("queued", "running")),
                )
            ).all()
        )


def test_the_database_refuses_a_second_active_run_of_a_stream(shared_integration) -> None:
    with session_scope() as s:
        s.add(SyncRun(integration_id=shared_integration, stream="products", status="succeeded"))
        s.add(SyncRun(integration_id=shared_integration, stream="products", status="queued"))
    with pytest.raises(sa.exc.IntegrityError), session_scope() as s:
        s.add(SyncRun(integration_id=shared_integration, stream="products", status="running"))
    with session_scope() as s:  # the engine's insert yields instead of failing
        taken = dict(integration_id=shared_integration, stream="products", trigger="manual")
        assert _insert_run(s, **taken) is None
        assert _insert_run(s, **{**taken, "stream": "orders"}) is not None  # another stream
    assert len(active_runs(shared_integration)) == 2


async def test_concurrent_requests_of_many_processes_make_one_run(shared_integration) -> None:
    connector = FakeConnector(total=60, page_size=10)

    async def slow_page(page: int) -> None:
        await asyncio.sleep(0.05)  # still running while the last process asks

    connector.on_page = slow_page
    engines = [process_engine(connector, f"host-{i}:{100 + i}") for i in range(8)]
    answers = await asyncio.gather(
        *(e.request_sync(integration_id=shared_integration) for e in engines)
    )
    await asyncio.gather(*(e.wait() for e in engines))
    assert len({tuple(a) for a in answers}) == 1  # every process got the same run
    run = run_row(answers[0][0])
    assert run.status == RunStatus.SUCCEEDED
    assert (run.records_read, run.records_inserted, run.pages) == (60, 60, 6)
    assert connector.pages_served == 6  # executed once, not once per process
    assert product_count(shared_integration) == 60


def held_at_page(page: int, total: int = 50) -> tuple[FakeConnector, asyncio.Event]:
    """A connector that stops before serving ``page`` (0-based) until the event is set: a
    process frozen, or busy, in the middle of a stream."""
    gate = asyncio.Event()

    async def hold(served: int) -> None:
        if served == page:
            await gate.wait()

    connector = FakeConnector(total=total, page_size=10)
    connector.on_page = hold
    return connector, gate


async def test_a_run_running_in_another_process_is_not_executed_again(shared_integration) -> None:
    first, gate = held_at_page(1, total=30)
    second = FakeConnector(total=30, page_size=10)
    hub, cli = process_engine(first, "hub:1"), process_engine(second, "cli:2")
    [run_id] = await hub.request_sync(integration_id=shared_integration)
    while run_row(run_id).pages < 1:
        await asyncio.sleep(0.01)
    assert await cli.request_sync(integration_id=shared_integration) == [run_id]
    await cli.wait()
    assert second.pages_served == 0
    gate.set()
    await wait_finished(cli, [run_id], poll=0.02)  # waits for the other process's run
    run = run_row(run_id)
    assert (run.status, run.worker, run.records_read, run.pages) == ("succeeded", "hub:1", 30, 3)


async def test_a_run_declared_dead_can_never_write_again(shared_integration) -> None:
    """A process that was only frozen (stale heartbeat) wakes up after recovery took over:
    its next batch is refused, and the retry completes the stream exactly."""
    frozen, gate = held_at_page(2)
    sleeper = process_engine(frozen, "sleeper:1")
    [run_id] = await sleeper.request_sync(integration_id=shared_integration)
    while run_row(run_id).pages < 2:
        await asyncio.sleep(0.01)
    with session_scope() as s:  # no heartbeat for three minutes
        s.execute(
            sa.update(SyncRun.__table__)
            .where(SyncRun.__table__.c.id == run_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=3))
        )
    rescuer = process_engine(FakeConnector(total=50, page_size=10), "rescuer:2")
    [retry_id] = await rescuer.recover_interrupted()
    gate.set()
    await sleeper.wait()
    await rescuer.wait()
    old, retry = run_row(run_id), run_row(retry_id)
    assert (old.status, old.records_read) == ("interrupted", 20)  # nothing after the takeover
    assert "resumed from the last checkpoint" in (old.error or "")
    assert (retry.status, retry.trigger) == ("succeeded", "retry")
    assert (retry.cursor_before, retry.records_read) == ({"next": 20}, 30)
    assert product_count(shared_integration) == 50
    with session_scope() as s:
        assert s.exec(select(StreamConfig)).one().cursor == {"next": 50}


async def test_wait_follows_an_interrupted_run_to_the_retry_that_resumes_it(
    shared_integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hub sync --wait` waits for a run of a hub process; that process dies (here: stops
    beating). The waiter's own recovery interrupts the run, and it follows the retry to its
    end, executing it itself since no hub adopts it."""
    monkeypatch.setattr(sync, "RECOVERY_EVERY", 0.05)
    frozen, gate = held_at_page(2)
    hub = process_engine(frozen, "hub:1")
    [run_id] = await hub.request_sync(integration_id=shared_integration)
    while run_row(run_id).pages < 2:
        await asyncio.sleep(0.01)
    with session_scope() as s:  # the hub's process went silent three minutes ago
        s.execute(
            sa.update(SyncRun.__table__)
            .where(SyncRun.__table__.c.id == run_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=3))
        )
    waiter = process_engine(FakeConnector(total=50, page_size=10), "cli:2")
    followed: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def resumed(interrupted: uuid.UUID, retry: uuid.UUID) -> None:
        followed.append((interrupted, retry))

    [final] = await wait_resumed(waiter, [run_id], on_resumed=resumed, poll=0.02)
    gate.set()
    await hub.wait()
    old, retry = run_row(run_id), run_row(final)
    assert followed == [(run_id, final)]
    assert (old.status, old.resumed_by, old.records_read) == ("interrupted", final, 20)
    assert (retry.trigger, retry.status, retry.worker) == ("retry", "succeeded", "cli:2")
    assert (retry.cursor_before, retry.records_read) == ({"next": 20}, 30)
    assert product_count(shared_integration) == 50


async def test_a_run_whose_stream_is_paused_is_not_resumed_and_wait_ends(
    shared_integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "RECOVERY_EVERY", 0.05)
    with session_scope() as s:
        s.add(SyncRun(
            integration_id=shared_integration, stream="products", status="running",
            worker="gone-host:1:1:abc", heartbeat_at=datetime.now(UTC) - timedelta(minutes=3),
        ))  # fmt: skip
        sync.set_paused(session=s, integration_id=shared_integration, stream="products",
                        paused=True)  # fmt: skip
    [run_id] = [run.id for run in active_runs(shared_integration)]
    waiter = process_engine(FakeConnector(), "cli:2")
    assert await wait_resumed(waiter, [run_id], poll=0.02) == [run_id]
    old = run_row(run_id)
    assert (old.status, old.resumed_by) == ("interrupted", None)
    assert active_runs(shared_integration) == []


async def test_a_run_handed_to_the_hub_starts_at_its_next_look_not_its_next_sweep(
    shared_integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hub sync` without --wait queues a run without an owner; a hub process starts it
    within HANDOVER_EVERY, long before the next crash recovery sweep."""
    monkeypatch.setattr(sync, "RECOVERY_EVERY", 3600.0)  # only the handover look can start it
    monkeypatch.setattr(sync, "HANDOVER_EVERY", 0.05)
    hub = process_engine(FakeConnector(total=30, page_size=10), "hub:1")
    sync.set_engine(hub)
    try:
        async with sync.engine_lifespan():
            cli = process_engine(FakeConnector(), "cli:2")
            [run_id] = await cli.request_sync(integration_id=shared_integration, run_here=False)
            # Never the handing process; the hub may have claimed it already (the change feed
            # wakes its claim at the commit).
            assert run_row(run_id).worker in (None, "hub:1")
            for _ in range(400):
                if run_row(run_id).status == "succeeded":
                    break
                await asyncio.sleep(0.025)
    finally:
        sync.set_engine(None)
    run = run_row(run_id)
    assert (run.status, run.worker, run.records_read) == ("succeeded", "hub:1", 30)
