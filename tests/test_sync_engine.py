"""The sync runner against a deterministic connector: counters, checkpoints, failures."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, func, select

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
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync import SyncEngine, SyncRefused, request_cancel
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
        assert s.exec(select(Notification)).one().kind == "run_failed"


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
        assert {n.kind for n in s.exec(select(Notification)).all()} >= {"needs_reauth"}
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
