"""The Amazon connector through the sync engine against the sandbox over real HTTP: orders,
listings and FBA inventory equal the sandbox's ground truth, and failures end as users
expect (report FATAL, revoked authorization, throttling and 5xx survived)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.amazon.client import BucketRegistry
from connectors.amazon.connector import AmazonConfig, AmazonConnector
from connectors.amazon.reports import ReportPolling
from connectors.amazon.streams import StreamOptions
from connectors.base import StoredCredential
from connectors.sandbox.core import checksum
from dashboard.db import session_scope
from dashboard.models import (
    Integration,
    InventoryLevel,
    Order,
    OrderLine,
    Product,
    StreamConfig,
    SyncRun,
)
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync import SyncEngine
from tests.sandbox_server import amazon_install, apps, control_headers, running_sandbox
from tests.spapi_contract import RecordingTransport, contract_problems

SELLER = "A2SYNCTESTSELLER"
MARKETPLACES = ["ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"]
TABLES = {
    "orders": Order,
    "order_lines": OrderLine,
    "listings": Product,
    "inventory": InventoryLevel,
}


@pytest.fixture
def sandbox() -> Iterator[str]:
    # A fast clock: searchOrders' 0.0056 requests/s becomes ~2.8/s, reports take ~0.1 s.
    with running_sandbox(seed=11, time_scale=500) as (base, _app):
        yield base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """A hub database on SQLite, then on PostgreSQL (skipped when it is not reachable)."""
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    from dashboard.db import get_engine

    with Session(get_engine()) as session:
        yield session


def connect(session: Session, base: str, **sizes: object) -> uuid.UUID:
    httpx.post(
        f"{base}/_sandbox/amazon/sellers",
        headers=control_headers(base),
        json={"selling_partner_id": SELLER, "region": "na", "marketplaces": MARKETPLACES, **sizes},
    ).raise_for_status()
    integration = create_integration(
        session=session,
        platform="amazon",
        display_name="Seller",
        region="na",
        marketplaces=MARKETPLACES,
    )
    refresh = amazon_install(base, SELLER)
    save_credential(
        session=session,
        integration_id=integration.id,
        credential=StoredCredential("refresh_token", refresh),
    )
    mark_connected(session=session, integration_id=integration.id, selling_partner_id=SELLER)
    session.commit()
    return integration.id


def engine_for(
    base: str, orders_api: str = "v2026-01-01", transport: httpx.AsyncBaseTransport | None = None
) -> SyncEngine:
    config = AmazonConfig(
        app_id=apps(base).amazon_app_id,
        client_id=apps(base).amazon_client_id,
        client_secret=apps(base).amazon_client_secret,
        base_url=f"{base}/amazon",
        options=StreamOptions(orders_api=orders_api, polling=ReportPolling(0.02, 0.2, 60)),
    )
    buckets = BucketRegistry()
    return SyncEngine(
        connector_factory=lambda _: AmazonConnector(config, transport, buckets=buckets),
        retry_delays=(0.05, 0.05, 0.05, 0.05),
    )


def stored(integration_id: uuid.UUID) -> dict[str, dict[str, object]]:
    result = {}
    with session_scope() as s:
        for name, table in TABLES.items():
            ids = s.exec(
                select(table.external_id).where(
                    table.integration_id == integration_id, sa.column("deleted_at").is_(None)
                )
            ).all()
            result[name] = {"count": len(ids), "checksum": checksum(ids)}
    return result


def truth(base: str) -> dict[str, dict[str, object]]:
    return httpx.get(
        f"{base}/_sandbox/amazon/sellers/{SELLER}/truth", headers=control_headers(base)
    ).json()["streams"]


def runs_by_stream(run_ids: list[uuid.UUID]) -> dict[str, SyncRun]:
    with session_scope() as s:
        runs = s.exec(select(SyncRun).where(sa.column("id").in_(run_ids))).all()
        for run in runs:
            s.expunge(run)
        return {r.stream: r for r in runs}


async def test_every_stream_equals_the_ground_truth(any_session: Session, sandbox: str) -> None:
    integration_id = connect(any_session, sandbox, orders=450, listings=2600, fba_items=140)
    engine = engine_for(sandbox)
    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    runs = runs_by_stream(run_ids)
    assert {name: run.status for name, run in runs.items()} == {
        "orders": "succeeded",
        "listings": "succeeded",
        "inventory": "succeeded",
    }, {name: run.error for name, run in runs.items()}
    assert stored(integration_id) == truth(sandbox)
    with session_scope() as s:
        listing = s.exec(
            select(Product).where(Product.external_id == "SKU-0000000@ATVPDKIKX0DER")
        ).one()
        # Cp1252 in the report decoded to the right characters, prices in the market currency.
        assert listing.currency == "USD" and listing.asin and listing.asin.startswith("B0")
        assert listing.title.isprintable() and "\ufffd" not in listing.title
        line = s.exec(select(OrderLine)).first()
        assert line is not None and line.product_external_id.endswith(
            ("@ATVPDKIKX0DER", "@A2EUQ1WTGCTBG2")
        )


async def test_incremental_orders_pick_up_changes_only(session: Session, sandbox: str) -> None:
    integration_id = connect(session, sandbox, orders=300, listings=20, fba_items=5)
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    httpx.post(
        f"{sandbox}/_sandbox/amazon/sellers/{SELLER}/mutate",
        headers=control_headers(sandbox),
        json={"updates": 4, "new_orders": 3},
    ).raise_for_status()
    import asyncio

    await asyncio.sleep(0.4)  # the 2-minute rule, at 500x: changes become visible after 0.24 s
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    run = runs_by_stream([run_id])["orders"]
    assert run.status == "succeeded"
    assert run.records_inserted >= 3 and run.records_read < 300
    got, expected = stored(integration_id), truth(sandbox)
    assert got["orders"] == expected["orders"] and got["order_lines"] == expected["order_lines"]


async def test_deprecated_orders_v0_gives_the_same_orders(session: Session, sandbox: str) -> None:
    integration_id = connect(session, sandbox, orders=60, listings=20, fba_items=5)
    engine = engine_for(sandbox, orders_api="v0")
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    assert runs_by_stream([run_id])["orders"].status == "succeeded"
    got, expected = stored(integration_id), truth(sandbox)
    assert got["orders"] == expected["orders"] and got["order_lines"] == expected["order_lines"]


async def test_faults_and_throttling_are_survived_with_exact_data(session, sandbox) -> None:
    integration_id = connect(session, sandbox, orders=400, listings=30, fba_items=260)
    httpx.put(
        f"{sandbox}/_sandbox/faults/amazon/{SELLER}",
        headers=control_headers(sandbox),
        json={"error_rate": 0.1, "throttle_rate": 0.1, "malformed_rate": 0.05},
    ).raise_for_status()
    engine = engine_for(sandbox)
    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    runs = runs_by_stream(run_ids)
    assert {r.status for r in runs.values()} == {"succeeded"}, {n: r.error for n, r in runs.items()}
    assert stored(integration_id) == truth(sandbox)


async def test_fatal_listings_report_fails_the_run_with_the_reason(session, sandbox) -> None:
    integration_id = connect(session, sandbox, orders=5, listings=50, fba_items=5)
    httpx.put(
        f"{sandbox}/_sandbox/amazon/sellers/{SELLER}/report-outcome",
        headers=control_headers(sandbox),
        json={"outcome": "FATAL"},
    ).raise_for_status()
    engine = engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="listings")
    await engine.wait()
    run = runs_by_stream([run_id])["listings"]
    assert run.status == "failed" and "FATAL" in (run.error or "")
    stats = httpx.get(f"{sandbox}/_sandbox/amazon/stats", headers=control_headers(sandbox)).json()
    assert stats["requests"] < 20  # one report asked for, not hammered


async def test_cancelled_report_means_no_listings_not_an_error(session, sandbox) -> None:
    integration_id = connect(session, sandbox, orders=5, listings=50, fba_items=5)
    httpx.put(
        f"{sandbox}/_sandbox/amazon/sellers/{SELLER}/report-outcome",
        headers=control_headers(sandbox),
        json={"outcome": "CANCELLED"},
    ).raise_for_status()
    engine = engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="listings")
    await engine.wait()
    run = runs_by_stream([run_id])["listings"]
    assert run.status == "succeeded" and run.records_read == 0


async def test_revoked_authorization_turns_the_integration_to_needs_reauth(session, sandbox):
    integration_id = connect(session, sandbox, orders=10, listings=10, fba_items=5)
    httpx.post(
        f"{sandbox}/_sandbox/amazon/sellers/{SELLER}/revoke", headers=control_headers(sandbox)
    ).raise_for_status()
    engine = engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    run = runs_by_stream([run_id])["orders"]
    assert run.status == "failed" and "reconnect" in (run.error or "")
    with session_scope() as s:
        assert s.get(Integration, integration_id).status == "needs_reauth"


async def test_expired_access_token_is_refreshed_once_and_the_run_goes_on(session, sandbox):
    integration_id = connect(session, sandbox, orders=120, listings=10, fba_items=5)
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="inventory")
    await engine.wait()
    httpx.post(
        f"{sandbox}/_sandbox/amazon/sellers/{SELLER}/expire-tokens",
        headers=control_headers(sandbox),
    ).raise_for_status()
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    assert runs_by_stream([run_id])["orders"].status == "succeeded"
    assert stored(integration_id)["orders"] == truth(sandbox)["orders"]


async def test_every_request_the_connector_sends_follows_the_models(session, sandbox) -> None:
    integration_id = connect(session, sandbox, orders=150, listings=60, fba_items=60)
    recorder = RecordingTransport()
    engine = engine_for(sandbox, transport=recorder)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    v0 = engine_for(sandbox, "v0", transport=recorder)
    await v0.request_sync(integration_id=integration_id, stream="orders", full_refresh=True)
    await v0.wait()
    operations = {
        spec_path
        for request in recorder.requests
        if (spec_path := request.url.path.split("/sp/na", 1)[-1]) != request.url.path
    }
    assert any(path.startswith("/orders/v0/orders") for path in operations)
    assert "/orders/2026-01-01/orders" in operations and "/fba/inventory/v1/summaries" in operations
    problems = [p for request in recorder.requests for p in contract_problems(request)]
    assert problems == []


async def test_listings_closed_on_amazon_are_marked_deleted(session, sandbox) -> None:
    integration_id = connect(session, sandbox, orders=5, listings=80, fba_items=5)
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="listings")
    await engine.wait()
    httpx.post(
        f"{sandbox}/_sandbox/amazon/sellers/{SELLER}/mutate",
        headers=control_headers(sandbox),
        json={"delete_listings": 6},
    ).raise_for_status()
    # A new report (a reused one would still list them): full resync skips the reuse window.
    [run_id] = await engine.request_sync(
        integration_id=integration_id, stream="listings", full_refresh=True
    )
    await engine.wait()
    run = runs_by_stream([run_id])["listings"]
    assert run.status == "succeeded" and run.records_deleted == 6
    assert stored(integration_id)["listings"] == truth(sandbox)["listings"]
    with session_scope() as s:
        gone = s.exec(select(Product).where(sa.column("deleted_at").is_not(None))).all()
        assert len(gone) == 6 and all(p.title for p in gone)  # last known state kept


async def test_a_resumed_report_that_is_gone_starts_the_marketplace_over(session, sandbox) -> None:
    """A run stopped while storing a listings report; by the next run that report is gone
    (expired on Amazon, or a restarted sandbox). The next run requests a new one, not fails
    for ever until someone asks for a full resync."""
    integration_id = connect(session, sandbox, orders=5, listings=50, fba_items=5)
    with session_scope() as s:
        config = s.exec(
            select(StreamConfig).where(
                StreamConfig.integration_id == integration_id, StreamConfig.stream == "listings"
            )
        ).one()
        config.cursor = {
            "marketplace": MARKETPLACES[0], "report_id": "50000000999", "rows_done": 20,
            "done": [], "started_at": "2026-01-01T00:00:00.000000Z",
        }  # fmt: skip
        s.add(config)
    engine = engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="listings")
    await engine.wait()
    run = runs_by_stream([run_id])["listings"]
    assert run.status == "succeeded", run.error
    assert stored(integration_id)["listings"] == truth(sandbox)["listings"]
