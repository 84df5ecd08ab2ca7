"""Deletions no webhook reported: a periodic id reconciliation of products, orders and
customers marks what Shopify no longer lists as deleted. The sync engine against the sandbox
over real HTTP; stored rows equal the sandbox's ground truth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.base import (
    Batch,
    IntegrationRef,
    MemoryCredentialStore,
    RecordKind,
    StoredCredential,
)
from connectors.shopify.client import _throttles
from connectors.shopify.connector import ShopifyConfig, ShopifyConnector
from dashboard.db import session_scope
from dashboard.models import Customer, Order, OrderLine, RunStatus, SyncRun
from tests.sandbox_server import apps, control_headers, running_sandbox, shopify_install
from tests.test_shopify_sync import SHOP, checkpoint, connect, engine_for, stored_checksums, truth

ALL_ORDERS = ("read_products", "read_orders", "read_all_orders", "read_customers")
MUTATE = f"/_sandbox/shopify/shops/{SHOP}/mutate"


def mutate(base: str, changes: dict[str, int]) -> httpx.Response:
    return httpx.post(f"{base}{MUTATE}", headers=control_headers(base), json=changes)


@pytest.fixture
def sandbox() -> Iterator[tuple[str, Any]]:
    _throttles.clear()
    with running_sandbox(seed=11, time_scale=50) as (base, app):
        yield base, app.state.sandbox.extras["shopify"]
    _throttles.clear()


def deleted_ids(table: Any, integration_id: uuid.UUID) -> set[str]:
    with session_scope() as s:
        return set(
            s.exec(
                select(table.external_id).where(
                    table.integration_id == integration_id, sa.column("deleted_at").is_not(None)
                )
            ).all()
        )


async def sync(engine: Any, integration_id: uuid.UUID, *streams: str) -> dict[str, SyncRun]:
    run_ids = [
        run_id
        for stream in streams
        for run_id in await engine.request_sync(integration_id=integration_id, stream=stream)
    ]
    await engine.wait()
    with session_scope() as s:
        runs = [s.get(SyncRun, run_id) for run_id in run_ids]
        return {run.stream: run for run in runs if run is not None}


async def test_orders_and_customers_deleted_without_webhooks_are_marked_deleted(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    base, shopify = sandbox
    integration_id = connect(
        session, base, scopes=ALL_ORDERS, products=20, orders=40, customers=120
    )
    engine = engine_for(base)
    await sync(engine, integration_id, "orders", "customers")
    changed = mutate(
        base,
        {"delete_orders": 5, "delete_customers": 4, "new_orders": 2},
    ).json()
    assert changed["deleted_orders"] == 5 and changed["deleted_customers"] == 4
    assert changed["webhooks"] == 0  # nothing subscribed: no webhook tells the hub

    # The first window after a backfill reconciles: the listing misses what was deleted.
    runs = await sync(engine, integration_id, "orders", "customers")
    assert {s: r.status for s, r in runs.items()} == {
        "orders": RunStatus.SUCCEEDED,
        "customers": RunStatus.SUCCEEDED,
    }
    assert runs["orders"].records_deleted == 5 and runs["customers"].records_deleted == 4
    assert runs["orders"].records_inserted >= 2  # the window after it still runs
    expected, got = truth(base), stored_checksums(integration_id)
    for name in ("orders", "order_lines", "customers"):
        assert got[name] == expected[name], name
    assert len(deleted_ids(Order, integration_id)) == 5
    assert len(deleted_ids(Customer, integration_id)) == 4
    # A deleted order takes its lines with it (order_lines equal the truth above).
    assert deleted_ids(OrderLine, integration_id)
    cursor = checkpoint(integration_id, "orders")
    assert cursor["reconciled_at"] and "reconcile" not in cursor and cursor["since"]

    # Within the period no run lists the ids again.
    requests = shopify.stats["requests"]
    mutate(base, {"delete_orders": 2}).raise_for_status()
    runs = await sync(engine, integration_id, "orders")
    assert runs["orders"].records_deleted == 0
    assert shopify.stats["requests"] - requests <= 3  # count and one page: no id listing
    assert checkpoint(integration_id, "orders")["reconciled_at"] == cursor["reconciled_at"]

    # Once the period has passed, the next run reconciles again.
    hourly = engine_for(base, shopify_reconcile_hours=1e-9)
    runs = await sync(hourly, integration_id, "orders")
    assert runs["orders"].records_deleted == 2
    assert stored_checksums(integration_id)["orders"] == truth(base)["orders"]
    assert checkpoint(integration_id, "orders")["reconciled_at"] > cursor["reconciled_at"]


async def test_products_deleted_before_a_full_resync_are_marked_by_the_reconciliation(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    """Events before a backfill are not read; the reconciliation after it still finds them."""
    base, _ = sandbox
    integration_id = connect(session, base, products=60, orders=5, customers=5)
    engine = engine_for(base)
    await sync(engine, integration_id, "products")
    mutate(base, {"deletes": 3}).raise_for_status()
    await engine.request_sync(integration_id=integration_id, stream="products", full_refresh=True)
    await engine.wait()
    assert stored_checksums(integration_id)["products"] != truth(base)["products"]
    runs = await sync(engine, integration_id, "products")
    assert runs["products"].records_deleted == 3
    expected, got = truth(base), stored_checksums(integration_id)
    assert got["products"] == expected["products"] and got["variants"] == expected["variants"]


async def test_orders_are_not_reconciled_without_read_all_orders(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    """Without read_all_orders Shopify lists only 60 days of orders: the older ones must not be
    taken for deleted, so orders are left to their webhooks."""
    base, _ = sandbox
    integration_id = connect(
        session, base, scopes=("read_products", "read_orders"), orders=30, customers=60
    )
    engine = engine_for(base)
    await sync(engine, integration_id, "orders", "customers")
    mutate(
        base,
        {"delete_orders": 3, "delete_customers": 2},
    )
    runs = await sync(engine, integration_id, "orders", "customers")
    assert runs["orders"].records_deleted == 0 and runs["customers"].records_deleted == 2
    assert "reconciled_at" not in checkpoint(integration_id, "orders")
    assert stored_checksums(integration_id)["customers"] == truth(base)["customers"]


async def test_an_interrupted_reconciliation_resumes_after_the_last_id_listed(
    sandbox: tuple[str, Any],
) -> None:
    base, _ = sandbox
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": SHOP, "customers": 600},
    ).raise_for_status()
    credentials = MemoryCredentialStore(
        StoredCredential("access_token", shopify_install(base, SHOP), list(ALL_ORDERS))
    )
    integration = IntegrationRef(id="i", platform="shopify", shop_domain=SHOP)
    connector = ShopifyConnector(
        ShopifyConfig(
            client_id="sandbox-shopify-client-id",
            client_secret=apps(base).shopify_client_secret,
            scopes=ALL_ORDERS,
            base_url=f"{base}/shopify",
        )
    )
    window = {"since": "2030-01-01T00:00:00Z", "after": None, "high_water": None}
    first: list[Batch] = []
    async for batch in connector.read_stream(integration, credentials, "customers", window):
        first.append(batch)
        break  # the hub dies after storing the first page of ids
    cursor = first[0].cursor
    assert cursor is not None and cursor["since"] == window["since"]
    assert cursor["reconcile"]["done"] == 250 and first[0].snapshot is None
    assert first[0].seen is not None and len(first[0].seen.external_ids) == 250
    rest = [b async for b in connector.read_stream(integration, credentials, "customers", cursor)]
    listed = [i for b in first + rest if b.seen for i in b.seen.external_ids]
    assert len(listed) == len(set(listed)) == 600  # nothing listed twice, nothing skipped
    [complete] = [b for b in rest if b.snapshot is not None]
    assert complete.snapshot.kind == RecordKind.CUSTOMER
    # The pass started before the crash: what the first run noted as seen still counts.
    assert complete.cursor["reconciled_at"] == cursor["reconcile"]["started_at"]
    assert rest[-1].cursor["reconciled_at"] == cursor["reconcile"]["started_at"]
    assert "reconcile" not in rest[-1].cursor
    # Resumed on another host, whose clock may lag, the pass starts over with its own start.
    elsewhere = {**cursor, "reconcile": {**cursor["reconcile"], "host": "another-host"}}
    again = [
        b async for b in connector.read_stream(integration, credentials, "customers", elsewhere)
    ]
    relisted = [i for b in again if b.seen for i in b.seen.external_ids]
    assert len(relisted) == 600
    assert again[-1].cursor["reconciled_at"] > cursor["reconcile"]["started_at"]
