"""The Shopify connector through the sync engine against the sandbox over real HTTP: the
synced rows equal the sandbox's ground truth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.base import StoredCredential
from connectors.sandbox.core import checksum
from connectors.shopify.client import _throttles
from connectors.shopify.connector import ShopifyConnector
from dashboard.db import session_scope
from dashboard.models import (
    Customer,
    Integration,
    InventoryLevel,
    Order,
    OrderLine,
    Product,
    RunStatus,
    StreamConfig,
    SyncRun,
    Variant,
)
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync import SyncEngine
from tests.sandbox_server import apps, control_headers, running_sandbox, shopify_install

SHOP = "sync-test.myshopify.com"
TABLES = {
    "products": Product,
    "variants": Variant,
    "inventory_levels": InventoryLevel,
    "orders": Order,
    "order_lines": OrderLine,
    "customers": Customer,
}


@pytest.fixture
def sandbox() -> Iterator[str]:
    _throttles.clear()
    with running_sandbox(seed=5, time_scale=50) as (base, _app):
        yield base
    _throttles.clear()


def checkpoint(integration_id: uuid.UUID, stream: str) -> dict[str, Any]:
    with session_scope() as s:
        config = s.exec(
            select(StreamConfig).where(
                StreamConfig.integration_id == integration_id, StreamConfig.stream == stream
            )
        ).one()
        return dict(config.cursor or {})


def connect(
    session: Session,
    base: str,
    shop: str = SHOP,
    scopes: tuple[str, ...] = ("read_products",),
    **sizes,
) -> uuid.UUID:
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": shop, **sizes},
    ).raise_for_status()
    integration = create_integration(
        session=session, platform="shopify", display_name="Shop", shop_domain=shop
    )
    token = shopify_install(base, shop, scopes="read_products,read_orders")
    save_credential(
        session=session,
        integration_id=integration.id,
        credential=StoredCredential("access_token", token, list(scopes)),
    )
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    return integration.id


def engine_for(base: str, **settings: object) -> SyncEngine:
    values = {
        "shopify_client_id": "sandbox-shopify-client-id",
        "shopify_client_secret": apps(base).shopify_client_secret,
        "shopify_scopes": "read_products",
        "shopify_base_url": f"{base}/shopify",
        **settings,
    }
    return SyncEngine(
        connector_factory=lambda _: ShopifyConnector.from_settings(values),
        retry_delays=(0.05, 0.05, 0.05, 0.05),
    )


def stored_checksums(integration_id: uuid.UUID) -> dict[str, dict[str, object]]:
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


def truth(base: str, shop: str = SHOP) -> dict[str, dict[str, object]]:
    return httpx.get(
        f"{base}/_sandbox/shopify/shops/{shop}/truth", headers=control_headers(base)
    ).json()["streams"]


async def test_every_stream_equals_the_ground_truth(session: Session, sandbox: str) -> None:
    integration_id = connect(
        session, sandbox, products=260, orders=180, customers=120, locations=2, plan="plus"
    )
    engine = engine_for(sandbox)
    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    with session_scope() as s:
        runs = s.exec(select(SyncRun).where(sa.column("id").in_(run_ids))).all()
        assert {r.stream: r.status for r in runs} == {
            "products": RunStatus.SUCCEEDED,
            "inventory": RunStatus.SUCCEEDED,
            "orders": RunStatus.SUCCEEDED,
            "customers": RunStatus.SUCCEEDED,
        }
        products_run = next(r for r in runs if r.stream == "products")
        assert products_run.progress == 1.0 and products_run.records_total == 260
        assert s.get(Integration, integration_id).status == "connected"
    assert stored_checksums(integration_id) == truth(sandbox)


async def test_incremental_run_picks_up_changes_and_new_orders(session, sandbox) -> None:
    integration_id = connect(session, sandbox, products=120, orders=60, customers=10)
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    httpx.post(
        f"{sandbox}/_sandbox/shopify/shops/{SHOP}/mutate",
        headers=control_headers(sandbox),
        json={"updates": 5, "new_orders": 4},
    ).raise_for_status()
    runs = await engine.request_sync(integration_id=integration_id, stream="orders")
    runs += await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    with session_scope() as s:
        orders_run = s.get(SyncRun, runs[0])
        products_run = s.get(SyncRun, runs[1])
        # Only the window since the last checkpoint is read, not the whole shop again.
        assert orders_run.records_inserted >= 4 and orders_run.records_read < 60
        assert products_run.records_updated >= 5 and products_run.records_read < 120
    expected = truth(sandbox)
    got = stored_checksums(integration_id)
    for stream in ("products", "variants", "orders", "order_lines"):
        assert got[stream] == expected[stream], stream


async def test_faults_are_survived_with_exact_data(session, sandbox) -> None:
    integration_id = connect(session, sandbox, products=300, orders=10, customers=5)
    httpx.put(
        f"{sandbox}/_sandbox/faults/shopify/{SHOP}",
        headers=control_headers(sandbox),
        json={"error_rate": 0.1, "malformed_rate": 0.05},
    ).raise_for_status()
    engine = engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    with session_scope() as s:
        assert s.get(SyncRun, run_id).status == RunStatus.SUCCEEDED
    expected, got = truth(sandbox), stored_checksums(integration_id)
    assert got["products"] == expected["products"] and got["variants"] == expected["variants"]


async def test_revoked_token_turns_the_integration_to_needs_reauth(session, sandbox) -> None:
    integration_id = connect(session, sandbox, products=20)
    httpx.post(
        f"{sandbox}/_sandbox/shopify/shops/{SHOP}/revoke", headers=control_headers(sandbox)
    ).raise_for_status()
    engine = engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run.status == RunStatus.FAILED and "reconnect" in run.error
        assert s.get(Integration, integration_id).status == "needs_reauth"


async def test_incremental_products_run_marks_deleted_products_without_webhooks(
    session, sandbox
) -> None:
    integration_id = connect(session, sandbox, products=120, orders=5, customers=5)
    mutate = f"{sandbox}/_sandbox/shopify/shops/{SHOP}/mutate"
    httpx.post(
        mutate, headers=control_headers(sandbox), json={"deletes": 2}
    ).raise_for_status()  # before the hub's first sync
    engine = engine_for(sandbox)
    await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    changed = httpx.post(
        f"{sandbox}/_sandbox/shopify/shops/{SHOP}/mutate",
        headers=control_headers(sandbox),
        json={"deletes": 4, "updates": 3},
    ).json()
    assert changed["webhooks"] == 0  # nothing subscribed: only the events tell
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run.status == RunStatus.SUCCEEDED
        assert run.records_deleted == 4 and run.records_updated >= 3
        deleted = s.exec(
            select(Product.external_id).where(
                Product.integration_id == integration_id, sa.column("deleted_at").is_not(None)
            )
        ).all()
    expected = truth(sandbox)
    assert stored_checksums(integration_id)["products"] == expected["products"]
    assert len(deleted) == 4 and expected["products"]["count"] == 114
    # Deletions already applied are not applied again by the next run.
    [again] = await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    with session_scope() as s:
        assert s.get(SyncRun, again).records_deleted == 0
    assert stored_checksums(integration_id)["products"] == expected["products"]
