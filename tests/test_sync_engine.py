"""The sync runner against a deterministic connector: counters, checkpoints, failures."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from dashboard.db import session_scope
from dashboard.models import (
    IntegrationStatus,
    Notification,
    Product,
    RunStatus,
    StreamConfig,
    SyncEvent,
    SyncRun,
)
from dashboard.services import runs, sync
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync import SyncEngine, SyncRefused, request_cancel
from dashboard.services.sync_queue import _insert_run, _queue_runs
from dashboard.services.sync_waits import wait_finished, wait_resumed
from tests.fake_connector import FakeConnector


@pytest.fixture
def integration_id(session: Session) -> uuid.UUID:
    integration = create_integration(
        session=session,
        platform="shopify",
        display_name="Acme",
        shop_domain="acme.myshopify.com",
        streams={"products": 15},
    )
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    return integration.id


def engine_with(connector: FakeConnector) -> SyncEngine:
    return SyncEngine(
        max_concurrency=4, connector_factory=lambda _: connector, retry_delays=(0.01, 0.01)
    )


def run_row(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None
        return run


def product_count(integration_id: uuid.UUID) -> int:
    with session_scope() as s:
        return s.exec(
            select(func.count())
            .select_from(Product)
            .where(Product.integration_id == integration_id)
        ).one()


async def test_a_first_sync_that_outgrows_the_announced_total_shows_no_total(
    integration_id,
) -> None:
    """The platform announced 20 products and the shop holds 40 (it grew during the first
    sync): within the 20 the run shows "10 of 20 records" and a half bar; past them, what the
    Overview's "Syncing now" and the Runs page show has no total (never "30 of 20") and an
    indeterminate bar, and the run still reads everything."""
    connector = FakeConnector(total=40, page_size=10)
    connector.announced_total = 20
    seen: dict[int, dict] = {}

    async def look(page: int) -> None:  # before page ``page`` is read: the run as shown
        with session_scope() as s:
            run = s.exec(select(SyncRun)).one()
            seen[page] = runs.run_summary(run, None)

    connector.on_page = look
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()

    within, past = seen[1], seen[3]
    assert (within["total_known"], within["records_done"], within["records_total"]) == (
        True, 10, 20,
    )  # fmt: skip
    assert within["progress"] == 50
    assert (past["total_known"], past["records_total"], past["has_progress"]) == (
        False, None, False,
    )  # fmt: skip
    assert past["records_read"] == 30
    run = run_row(run_id)
    assert (run.status, run.records_read, run.records_total) == (RunStatus.SUCCEEDED, 40, None)
    assert product_count(integration_id) == 40
    with session_scope() as s:  # the page log says the same
        log = [event.message for event in s.exec(select(SyncEvent))]
    pages = sorted(line for line in log if line.startswith("page "))  # "page 1:" .. "page 4:"
    assert [line.split("; ")[1] for line in pages] == [
        "10 of 20 read so far", "20 of 20 read so far", "30 read so far", "40 read so far",
    ]  # fmt: skip


async def test_full_sync_stores_every_record_and_checkpoint(integration_id) -> None:
    engine = engine_with(FakeConnector(total=45, page_size=10))
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert (run.records_read, run.records_inserted, run.pages) == (45, 45, 5)
    assert run.progress == 1.0
    assert product_count(integration_id) == 45
    with session_scope() as s:
        config = s.exec(select(StreamConfig)).one()
        assert config.cursor == {"next": 50}
        assert s.get(type(config), config.id).last_run_at is not None


async def test_second_run_resumes_from_checkpoint_and_updates(integration_id) -> None:
    connector = FakeConnector(total=30, page_size=10)
    engine = engine_with(connector)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    connector.total = 40  # ten new records upstream
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_id)
    assert run.cursor_before == {"next": 30}
    assert (run.records_read, run.records_inserted) == (10, 10)
    assert product_count(integration_id) == 40


async def test_replaying_batches_creates_no_duplicates(integration_id) -> None:
    engine = engine_with(FakeConnector(total=20, page_size=10))
    await engine.request_sync(integration_id=integration_id, full_refresh=True)
    await engine.wait()
    [again] = await engine.request_sync(integration_id=integration_id, full_refresh=True)
    await engine.wait()
    run = run_row(again)
    assert (run.records_inserted, run.records_updated) == (0, 20)
    assert product_count(integration_id) == 20


async def test_transient_error_is_retried_from_checkpoint(integration_id) -> None:
    connector = FakeConnector(total=30, page_size=10)
    connector.fail_transient_at = {1}
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_id)
    assert run.status == RunStatus.SUCCEEDED and run.attempt == 2
    assert product_count(integration_id) == 30
    assert connector.pages_served == 3  # page 0 was not fetched again
    with session_scope() as s:
        messages = [e.message for e in s.exec(select(SyncEvent)).all()]
    assert any("retrying" in m for m in messages)


async def test_persistent_transient_errors_fail_with_reason(integration_id) -> None:
    connector = FakeConnector(total=30, page_size=10)

    class Always(set):
        def __contains__(self, item: object) -> bool:
            return True

        def discard(self, item: object) -> None:
            pass

    connector.fail_transient_at = Always()
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_id)
    assert run.status == RunStatus.FAILED
    assert "gave up after 3 attempts" in (run.error or "")
    with session_scope() as s:
        # One notification, from the incident, in words; the raw error stays with the run.
        notification = s.exec(select(Notification)).one()
        assert notification.kind == "incident_opened"
        assert "Shopify answered 503 for 1 stream since" in notification.message
        assert "the hub retries every 15 min" in notification.message


async def test_revoked_token_sets_needs_reauth_and_refuses_new_syncs(integration_id) -> None:
    connector = FakeConnector(total=30)
    connector.revoked = True
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    assert run_row(run_id).status == RunStatus.FAILED
    with session_scope() as s:
        from dashboard.models import Integration

        integration = s.get(Integration, integration_id)
        assert integration.status == IntegrationStatus.NEEDS_REAUTH
        [notification] = s.exec(select(Notification)).all()
        assert notification.kind == "incident_opened"
        assert notification.message.startswith("Acme needs to be reconnected: Shopify refused")
    with pytest.raises(SyncRefused, match="needs reauth"):
        await engine.request_sync(integration_id=integration_id)


async def test_bad_records_are_skipped_and_logged(integration_id) -> None:
    connector = FakeConnector(total=20, page_size=10)
    connector.bad_ids = {3, 15}
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_id)
    assert run.status == RunStatus.PARTIAL
    assert (run.records_inserted, run.records_skipped) == (18, 2)
    with session_scope() as s:
        messages = [e.message for e in s.exec(select(SyncEvent)).all()]
    assert any("skipped record p3: price is not a number" in m for m in messages)


async def test_cancel_stops_between_batches(integration_id) -> None:
    connector = FakeConnector(total=100, page_size=10)
    engine = engine_with(connector)
    run_ids: list[uuid.UUID] = []

    async def cancel_on_third_page(page: int) -> None:
        if page == 2:
            with session_scope() as s:
                request_cancel(session=s, run_id=run_ids[0])

    connector.on_page = cancel_on_third_page
    run_ids += await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    run = run_row(run_ids[0])
    assert run.status == RunStatus.CANCELLED
    assert run.records_read == 30  # the batch in flight is kept, nothing after it
    assert product_count(integration_id) == 30


def test_cancelling_a_queued_run_returns_it_cancelled(integration_id) -> None:
    """The run Cancel returns reads as cancelled, with its end, after its session is gone."""
    with session_scope() as s:
        [run_id] = _queue_runs(s, integration_id, None, "manual", False)
    with session_scope() as s:
        run = request_cancel(session=s, run_id=run_id)
    assert run.status == RunStatus.CANCELLED and run.finished_at is not None


async def test_one_run_per_stream(integration_id) -> None:
    engine = engine_with(FakeConnector(total=10))
    first = await engine.request_sync(integration_id=integration_id)
    second = await engine.request_sync(integration_id=integration_id)
    assert first == second
    await engine.wait()


async def test_pending_integration_cannot_sync(session: Session) -> None:
    integration = create_integration(
        session=session, platform="shopify", display_name="New", shop_domain="new.myshopify.com"
    )
    session.commit()
    with pytest.raises(SyncRefused, match="connect it before syncing"):
        await engine_with(FakeConnector()).request_sync(integration_id=integration.id)


# --- one active run per stream across processes ------------------------------------------------


@pytest.fixture
def shared_integration(any_db: str) -> uuid.UUID:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Shared",
            shop_domain="shared.myshopify.com", streams={"products": 15},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        return integration.id


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


async def test_a_run_logs_start_pages_and_a_summary_searchable_across_integrations(
    session: Session, integration_id
) -> None:
    other = create_integration(
        session=session, platform="amazon", display_name="Seller", region="na",
        marketplaces=["ATVPDKIKX0DER"], streams={"listings": 15},
    )  # fmt: skip
    mark_connected(session=session, integration_id=other.id, selling_partner_id="A1SELLER")
    session.commit()
    engine = engine_with(FakeConnector(total=25, page_size=10))
    [run_id] = await engine.request_sync(integration_id=integration_id)
    [other_run] = await engine.request_sync(integration_id=other.id)  # the fake serves any stream
    await engine.wait()
    from dashboard.services import runs

    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id)]
        assert log[0] == "run started (manual, attempt 1): from the beginning"
        assert log[1].startswith("page 1: 10 records (10 new, 0 updated, 0 deleted, 0 skipped)")
        assert log[3].startswith("page 3: 5 records")
        assert log[-1].startswith("run succeeded (25 records read in 3 pages in ")
        everywhere = runs.search_events(session=s, search="records read")
        assert {e["integration"] for e in everywhere} == {"Acme", "Seller"}
        amazon_only = runs.search_events(session=s, search="records read", platform="amazon")
        assert [e["run_id"] for e in amazon_only] == [str(other_run)]
        assert runs.search_events(session=s, level="warning") == []
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert runs.search_events(session=s, since=later) == []
        assert runs.summaries_of(session=s, run_ids=[run_id])[0]["live_state"] == "succeeded"


async def test_a_long_run_keeps_a_bounded_log_with_room_for_its_warnings(
    shared_integration,
) -> None:
    """250 pages: the run's log keeps its first 159 pages, then stops logging pages so that the
    records it had to skip near the end and its summary are still there to read (on SQLite and
    PostgreSQL: each page's transaction counts the log in its fence's RETURNING)."""
    from dashboard.services.run_log import MAX_EVENTS_PER_RUN, RESERVED_FOR_NOTES

    connector = FakeConnector(total=250, page_size=1)
    connector.bad_ids = {245, 246}
    engine = engine_with(connector)
    [run_id] = await engine.request_sync(integration_id=shared_integration)
    await engine.wait()
    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id, limit=1000)]
    pages = [line for line in log if line.startswith("page ")]
    assert len(pages) == MAX_EVENTS_PER_RUN - RESERVED_FOR_NOTES - 1  # after "run started"
    assert pages[-1].startswith("page 159: 1 records")
    assert [line for line in log if line.startswith("skipped record")] == [
        "skipped record p245: price is not a number",
        "skipped record p246: price is not a number",
    ]
    assert log[0].startswith("run started") and log[-1].startswith(
        "run partial (250 records read in 250 pages"
    )
    assert len(log) <= MAX_EVENTS_PER_RUN
