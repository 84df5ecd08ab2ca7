"""The sync runner against a deterministic connector: counters, checkpoints, failures."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from dashboard.db import session_scope
from dashboard.models import (
    IntegrationStatus,
    Notification,
    RunStatus,
    StreamConfig,
    SyncEvent,
    SyncRun,
)
from dashboard.services import runs
from dashboard.services.integrations import create_integration
from dashboard.services.sync import SyncRefused, request_cancel
from dashboard.services.sync_queue import _queue_runs
from tests.fake_connector import FakeConnector
from tests.sync_engine_helpers import engine_with, product_count, run_row


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
