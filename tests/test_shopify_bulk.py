"""Backfills through Shopify bulk operations: the sync engine against the sandbox over real
HTTP (the stored rows equal the sandbox's ground truth), the fallback to pages when an
operation fails, resuming from a bulk checkpoint, and the streaming join of children."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from connectors.base import Batch, MemoryCredentialStore, StoredCredential
from connectors.shopify import queries
from connectors.shopify.bulk import BulkPolicy, Joiner, OrphanChild
from connectors.shopify.client import _throttles
from connectors.shopify.connector import ShopifyConfig, ShopifyConnector
from connectors.shopify.streams import BEGINNING
from dashboard.db import session_scope
from dashboard.models import RunStatus, SyncRun
from dashboard.services.sync import SyncEngine
from tests.sandbox_server import apps, control_headers, running_sandbox, shopify_install
from tests.test_shopify_sync import SHOP, checkpoint, connect, stored_checksums, truth

FAST_POLLS = BulkPolicy(poll_seconds=0.02, poll_max_seconds=0.1, batch_roots=40)


@pytest.fixture
def sandbox() -> Iterator[tuple[str, Any]]:
    _throttles.clear()
    with running_sandbox(seed=8, time_scale=50) as (base, app):
        yield base, app.state.sandbox.extras["shopify"]
    _throttles.clear()


def connector_for(base: str, threshold: int = 100) -> ShopifyConnector:
    return ShopifyConnector(
        ShopifyConfig(
            client_id="sandbox-shopify-client-id",
            client_secret=apps(base).shopify_client_secret,
            scopes=("read_products",),
            base_url=f"{base}/shopify",
            bulk_threshold=threshold,
            bulk_policy=FAST_POLLS,
        )
    )


def engine_for(base: str, threshold: int = 100) -> SyncEngine:
    return SyncEngine(
        connector_factory=lambda _: connector_for(base, threshold),
        retry_delays=(0.05, 0.05, 0.05, 0.05),
    )


def runs_by_stream(run_ids: list[uuid.UUID]) -> dict[str, SyncRun]:
    with session_scope() as s:
        return {run.stream: run for run in (s.get(SyncRun, r) for r in run_ids) if run}


async def test_large_streams_backfill_through_bulk_operations_and_equal_the_truth(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    base, shopify = sandbox
    integration_id = connect(
        session, base, products=260, orders=150, customers=60, locations=2, plan="plus"
    )
    engine = engine_for(base, threshold=100)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    # products (260), inventory (520 variants) and orders (150) are above 100: bulk;
    # customers (60) are not: pages.
    exported = sorted(op.prepared.root for op in shopify.bulk.operations.values())
    assert exported == ["inventoryItems", "orders", "products"]
    assert {op.status for op in shopify.bulk.operations.values()} == {"COMPLETED"}
    assert stored_checksums(integration_id) == truth(base)
    with session_scope() as s:
        runs = s.exec(select(SyncRun).where(SyncRun.integration_id == integration_id)).all()
        assert {r.stream: r.status for r in runs} == dict.fromkeys(
            ("products", "inventory", "orders", "customers"), RunStatus.SUCCEEDED
        )
        products_run = next(r for r in runs if r.stream == "products")
        assert products_run.records_total == 260 and products_run.progress == 1.0
        assert products_run.records_skipped == 0
    # The checkpoint hands over to incremental windows: the next run reads changes only.
    after_bulk = checkpoint(integration_id, "products")
    assert "bulk" not in after_bulk and after_bulk["since"] and after_bulk["after"] is None
    httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/mutate",
        headers=control_headers(base),
        json={"updates": 4, "new_orders": 3},
    ).raise_for_status()
    run_ids = await engine.request_sync(integration_id=integration_id, stream="products")
    run_ids += await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    runs = runs_by_stream(run_ids)
    assert runs["products"].records_updated >= 4 and runs["products"].records_read < 260
    assert runs["orders"].records_inserted >= 3 and runs["orders"].records_read < 150
    assert len(shopify.bulk.operations) == 3  # no new export
    expected, got = truth(base), stored_checksums(integration_id)
    for stream in ("products", "variants", "orders", "order_lines"):
        assert got[stream] == expected[stream], stream


async def test_a_failed_bulk_operation_falls_back_to_pages(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    base, shopify = sandbox
    integration_id = connect(session, base, products=220, orders=5, customers=5)
    httpx.put(
        f"{base}/_sandbox/shopify/shops/{SHOP}/bulk_faults",
        headers=control_headers(base),
        json={"error_code": "INTERNAL_SERVER_ERROR", "count": -1},
    ).raise_for_status()
    engine = engine_for(base, threshold=100)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    [operation] = shopify.bulk.operations.values()
    assert operation.status == "FAILED" and operation.error_code == "INTERNAL_SERVER_ERROR"
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run.status == RunStatus.SUCCEEDED and run.records_skipped == 0
        assert run.pages >= 220 // queries.PAGE_SIZES["products"]  # read page by page
    expected, got = truth(base), stored_checksums(integration_id)
    assert got["products"] == expected["products"] and got["variants"] == expected["variants"]
    assert checkpoint(integration_id, "products")["since"]


async def test_a_restart_resumes_the_same_operation_and_skips_what_was_stored(
    sandbox: tuple[str, Any],
) -> None:
    from connectors.base import IntegrationRef

    base, shopify = sandbox
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": SHOP, "products": 150},
    ).raise_for_status()
    credentials = MemoryCredentialStore(
        StoredCredential("access_token", shopify_install(base, SHOP))
    )
    integration = IntegrationRef(id="i", platform="shopify", shop_domain=SHOP)
    connector = connector_for(base, threshold=100)
    first: list[Batch] = []
    async for batch in connector.read_stream(integration, credentials, "products", None):
        first.append(batch)
        if batch.records:  # the hub dies after storing the first batch of the file
            break
    cursor = first[-1].cursor
    assert cursor is not None and cursor["bulk"]["roots"] == FAST_POLLS.batch_roots
    assert cursor["deleted_since"] == BEGINNING  # no deletion before the backfill
    assert cursor["deleted_seen"] == []
    rest = [b async for b in connector.read_stream(integration, credentials, "products", cursor)]
    products = [r.external_id for b in first + rest for r in b.records if r.kind == "product"]
    assert len(shopify.bulk.operations) == 1  # the same operation, polled again
    assert len(products) == len(set(products)) == 150
    assert rest[-1].done == 150 and rest[-1].cursor["since"]


def test_children_join_their_parent_in_the_paginated_shape() -> None:
    joiner = Joiner({"ProductVariant": "variants"}, window=2)
    lines = [
        {"id": "gid://shopify/Product/1", "title": "A"},
        {"id": "gid://shopify/ProductVariant/11", "__parentId": "gid://shopify/Product/1"},
        {"id": "gid://shopify/Product/2", "title": "B"},
        {"id": "gid://shopify/Product/3", "title": "C"},
        # late, but its parent is still open (window 2)
        {"id": "gid://shopify/ProductVariant/21", "__parentId": "gid://shopify/Product/2"},
        {"id": "gid://shopify/Product/4", "title": "D"},
    ]
    ready = [node for line in lines for node in joiner.feed(line)] + joiner.flush()
    assert [n["id"][-1] for n in ready] == ["1", "2", "3", "4"]
    assert ready[0]["variants"] == {"nodes": [{"id": "gid://shopify/ProductVariant/11"}]}
    assert ready[1]["variants"]["nodes"][0]["id"].endswith("/21")
    assert ready[3]["variants"] == {"nodes": []}
    with pytest.raises(OrphanChild):
        joiner.feed({"id": "gid://shopify/ProductVariant/9", "__parentId": "gid://shopify/P/9"})


def mock_connector(handler: Any, threshold: int = 1) -> ShopifyConnector:
    """A connector whose Shopify is ``handler``; no export is left over from earlier runs."""

    def shopify(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("graphql.json") and operation_name(request) == (
            "BulkOperationsActive"
        ):
            nothing = {"nodes": []}
            return httpx.Response(200, json={"data": {"created": nothing, "running": nothing}})
        return handler(request)

    return ShopifyConnector(
        ShopifyConfig("id", "secret", (), None, bulk_threshold=threshold, bulk_policy=FAST_POLLS),
        transport=httpx.MockTransport(shopify),
    )


def operation_name(request: httpx.Request) -> str:
    body = json.loads(request.content)
    return str(body["query"].split("(")[0].split("{")[0].split()[-1])


async def read_all(connector: ShopifyConnector, stream: str) -> list[Batch]:
    from connectors.base import IntegrationRef

    integration = IntegrationRef(id="i", platform="shopify", shop_domain="x.myshopify.com")
    credentials = MemoryCredentialStore(StoredCredential("access_token", "shpat_x"))
    return [b async for b in connector.read_stream(integration, credentials, stream, None)]


async def test_a_refused_bulk_operation_falls_back_to_pages() -> None:
    asked: list[str] = []

    def shopify(request: httpx.Request) -> httpx.Response:
        name = operation_name(request)
        asked.append(name)
        data = {
            "CustomersCount": {"customersCount": {"count": 2}},
            "BulkOperationRun": {
                "bulkOperationRunQuery": {
                    "bulkOperation": None,
                    "userErrors": [
                        {
                            "field": None,
                            "message": "Bulk operations limit reached. Please try again later.",
                            "code": "LIMIT_REACHED",
                        }
                    ],
                }
            },
            "Customers": {
                "customers": {
                    "nodes": [
                        {"id": f"gid://shopify/Customer/{n}", "updatedAt": "2026-01-01T00:00:00Z"}
                        for n in (1, 2)
                    ],
                    "pageInfo": {"hasNextPage": False, "endCursor": None},
                }
            },
        }[name]
        return httpx.Response(200, json={"data": data})

    batches = await read_all(mock_connector(shopify), "customers")
    # Counted once to size the backfill, and once as the full pass ends (completeness).
    assert asked == ["CustomersCount", "BulkOperationRun", "Customers", "CustomersCount"]
    assert [r.external_id for b in batches for r in b.records] == [
        "gid://shopify/Customer/1",
        "gid://shopify/Customer/2",
    ]
    assert batches[-1].total_hint == 2 and batches[-1].cursor["since"] == "2025-12-31T23:58:00Z"


async def test_bad_lines_are_skipped_and_logged_not_fatal() -> None:
    """A result with broken lines keeps the good ones; the broken ones are reported."""
    result = "\n".join(
        [
            json.dumps({"id": "gid://shopify/Customer/1", "updatedAt": "2026-01-01T00:00:00Z"}),
            '{"id": "gid://shopify/Customer/2", "upda',  # cut off
            json.dumps({"id": "gid://shopify/Customer/3", "updatedAt": "2026-01-02T00:00:00Z"}),
            json.dumps({"id": "gid://shopify/Customer/4"}),  # no updatedAt: cannot be read
        ]
    )

    def shopify(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/result.jsonl"):
            assert "X-Shopify-Access-Token" not in request.headers  # signed url: no token
            return httpx.Response(200, text=result)
        name = operation_name(request)
        data: dict[str, Any] = {
            "CustomersCount": {"customersCount": {"count": 4}},
            "BulkOperationRun": {
                "bulkOperationRunQuery": {
                    "bulkOperation": {
                        "id": "gid://shopify/BulkOperation/1",
                        "status": "CREATED",
                        "createdAt": "2026-01-03T00:00:00Z",
                    },
                    "userErrors": [],
                }
            },
            "BulkOperation": {
                "bulkOperation": {
                    "id": "gid://shopify/BulkOperation/1",
                    "status": "COMPLETED",
                    "url": "https://storage.example/result.jsonl",
                }
            },
        }[name]
        return httpx.Response(200, json={"data": data})

    batches = await read_all(mock_connector(shopify), "customers")
    records = [r.external_id for b in batches for r in b.records]
    errors = [e.message for b in batches for e in b.errors]
    assert records == ["gid://shopify/Customer/1", "gid://shopify/Customer/3"]
    assert len(errors) == 2 and "line 2" in errors[0] and "customers node" in errors[1]
    # The next window starts before the export began (and before the newest change seen).
    assert batches[-1].cursor == {
        "since": "2026-01-01T23:58:00Z",
        "after": None,
        "high_water": "2026-01-02T00:00:00Z",
    }


def scripted(answers: dict[str, Any], asked: list[str]) -> Any:
    """A Shopify answering each operation name with its (data or callable) answer."""

    def shopify(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example":
            return answers["download"](request)
        name = operation_name(request)
        asked.append(name)
        answer = answers[name]
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    return shopify


def started(created: str = "2026-01-03T00:00:00Z") -> dict[str, Any]:
    operation = {"id": "gid://shopify/BulkOperation/7", "status": "CREATED", "createdAt": created}
    return {"data": {"bulkOperationRunQuery": {"bulkOperation": operation, "userErrors": []}}}


def finished(url: str | None) -> dict[str, Any]:
    operation = {"id": "gid://shopify/BulkOperation/7", "status": "COMPLETED", "url": url}
    return {"data": {"bulkOperation": operation}}


CUSTOMERS_PAGE = {
    "data": {
        "customers": {
            "nodes": [{"id": "gid://shopify/Customer/1", "updatedAt": "2026-01-01T00:00:00Z"}],
            "pageInfo": {"hasNextPage": False, "endCursor": None},
        }
    }
}


async def test_an_expired_result_url_falls_back_to_pages() -> None:
    asked: list[str] = []
    shopify = scripted(
        {
            "CustomersCount": {"data": {"customersCount": {"count": 5}}},
            "BulkOperationRun": started(),
            "BulkOperation": finished("https://storage.example/r.jsonl"),
            # Google Cloud Storage answers 400 to an expired signature
            "download": lambda _: httpx.Response(400, text="<Error>ExpiredToken</Error>"),
            "Customers": CUSTOMERS_PAGE,
        },
        asked,
    )
    batches = await read_all(mock_connector(shopify), "customers")
    # The last count: the full pass ends with the platform's own (completeness).
    assert asked == [
        "CustomersCount", "BulkOperationRun", "BulkOperation", "Customers", "CustomersCount"
    ]  # fmt: skip
    assert [r.external_id for b in batches for r in b.records] == ["gid://shopify/Customer/1"]


async def test_a_completed_operation_without_a_file_is_an_empty_stream() -> None:
    asked: list[str] = []
    shopify = scripted(
        {
            "CustomersCount": {"data": {"customersCount": {"count": 5}}},
            "BulkOperationRun": started("2026-01-03T00:00:00Z"),
            "BulkOperation": finished(None),  # Shopify: no results, no url
        },
        asked,
    )
    batches = await read_all(mock_connector(shopify), "customers")
    assert [r for b in batches for r in b.records] == []
    assert batches[-1].cursor == {"since": "2026-01-02T23:58:00Z", "after": None,
                                  "high_water": None}  # fmt: skip


async def test_an_inventory_backfill_that_cannot_be_counted_pages() -> None:
    asked: list[str] = []
    denied = {
        "errors": [
            {
                "message": "Access denied for productVariantsCount field.",
                "extensions": {"code": "ACCESS_DENIED"},
            }
        ]
    }
    page = {
        "data": {
            "inventoryItems": {
                "nodes": [{"id": "gid://shopify/InventoryItem/1", "sku": "A",
                           "updatedAt": "2026-01-01T00:00:00Z", "inventoryLevels": {"nodes": []}}],
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            }
        }
    }  # fmt: skip
    shopify = scripted({"ProductVariantsCount": denied, "Inventory": page}, asked)
    batches = await read_all(mock_connector(shopify), "inventory")
    assert asked == ["ProductVariantsCount", "Inventory"]
    assert batches[-1].cursor is not None and batches[-1].cursor["since"]


async def test_a_bulk_resync_deletes_the_variants_and_lines_shopify_no_longer_has(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    """A full resync through bulk operations: each exported product or order comes with every
    variant or line, so the stored ones it no longer has are deleted."""
    base, _ = sandbox
    integration_id = connect(session, base, products=40, orders=30, lines_per_order=3)
    engine = engine_for(base, threshold=0)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/mutate",
        headers=control_headers(base),
        json={"remove_variants": 4, "remove_lines": 3},
    ).raise_for_status()
    runs = runs_by_stream(
        await engine.request_sync(integration_id=integration_id, full_refresh=True)
    )
    await engine.wait()
    runs = runs_by_stream([run.id for run in runs.values()])
    assert checkpoint(integration_id, "products").get("since")  # read through bulk, handed over
    assert (runs["products"].records_deleted, runs["orders"].records_deleted) == (4, 3)
    stored, expected = stored_checksums(integration_id), truth(base)
    for name in ("products", "variants", "orders", "order_lines"):
        assert stored[name] == expected[name], name


async def test_a_full_resync_cancels_the_export_its_predecessor_left_running() -> None:
    """A run that started an export is cancelled; a full resync clears its checkpoint and
    starts afresh. The old export is cancelled on Shopify instead of running on for nothing
    in one of the shop's five bulk query slots; a different stream's export is left alone."""
    from connectors.base import IntegrationRef

    _throttles.clear()
    # A real-time clock: an export stays CREATED for a platform second, long enough to leave.
    with running_sandbox(seed=8, time_scale=1) as (base, app):
        shopify = app.state.sandbox.extras["shopify"]
        httpx.post(
            f"{base}/_sandbox/shopify/shops",
            headers=control_headers(base),
            json={"shop": SHOP, "products": 150, "orders": 150},
        ).raise_for_status()
        credentials = MemoryCredentialStore(
            StoredCredential("access_token", shopify_install(base, SHOP))
        )
        integration = IntegrationRef(id="i", platform="shopify", shop_domain=SHOP)
        connector = connector_for(base, threshold=100)
        for stream in ("orders", "products"):
            async for batch in connector.read_stream(integration, credentials, stream, None):
                assert batch.cursor and batch.cursor["bulk"]["id"]
                break  # the run is cancelled once its export has started
        orders_export, left = (op.id for op in sorted(shopify.bulk.operations.values(),
                                                         key=lambda op: op.number))  # fmt: skip

        resync = [
            b async for b in connector.read_stream(integration, credentials, "products", None)
        ]

        statuses = {op.id: op.status for op in shopify.bulk.operations.values()}
        assert statuses[left] in ("CANCELING", "CANCELED")
        assert statuses[orders_export] not in ("CANCELING", "CANCELED")
        products = {r.external_id for b in resync for r in b.records if r.kind == "product"}
        assert len(products) == 150  # the new export read the whole catalog
    _throttles.clear()
