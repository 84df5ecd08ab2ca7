"""Nested connections are read to their end on the paginated path: a page reads the first 15
variants, 15 line items or 8 inventory levels of a node, and follow-up queries read the rest.
The sync engine against the sandbox over real HTTP; stored rows equal the ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from connectors.base import MemoryCredentialStore, StoredCredential
from connectors.shopify.client import _throttles
from connectors.shopify.connector import ShopifyConfig, ShopifyConnector
from dashboard.db import session_scope
from dashboard.models import Order, Product, RunStatus, SyncRun
from tests.sandbox_server import apps, control_headers, running_sandbox, shopify_install
from tests.test_shopify_sync import SHOP, connect, engine_for, stored_checksums, truth


@pytest.fixture
def sandbox() -> Iterator[tuple[str, Any]]:
    _throttles.clear()
    with running_sandbox(seed=12, time_scale=50) as (base, app):
        yield base, app.state.sandbox.extras["shopify"]
    _throttles.clear()


async def test_many_variants_lines_and_levels_are_stored_completely_through_pages(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    base, _ = sandbox
    integration_id = connect(
        session, base, products=6, variants_per_product=40, orders=8, lines_per_order=30,
        customers=5, locations=10, plan="plus",
    )  # fmt: skip
    engine = engine_for(base)  # far below the bulk threshold: every stream reads pages
    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    with session_scope() as s:
        runs = {r.stream: r for r in (s.get(SyncRun, i) for i in run_ids) if r}
        assert {n: r.status for n, r in runs.items()} == dict.fromkeys(
            ("products", "inventory", "orders", "customers"), RunStatus.SUCCEEDED
        )
        assert runs["products"].records_skipped == 0
        product = s.exec(select(Product).where(Product.integration_id == integration_id)).first()
        order = s.exec(select(Order).where(Order.integration_id == integration_id)).first()
        # raw has every nested node, in the shape a bulk export gives (no pageInfo).
        assert product is not None and order is not None
        assert len(product.raw["variants"]["nodes"]) == 40 and "pageInfo" not in product.raw
        assert set(product.raw["variants"]) == {"nodes"}
        assert len(order.raw["lineItems"]["nodes"]) == 30
    expected = truth(base)
    assert expected["variants"]["count"] == 240 and expected["order_lines"]["count"] == 240
    assert expected["inventory_levels"]["count"] == 2400
    assert stored_checksums(integration_id) == expected

    # An incremental window reads a changed product's variants to the end as well.
    httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/mutate",
        headers=control_headers(base),
        json={"updates": 2, "new_orders": 1},
    ).raise_for_status()
    await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    assert stored_checksums(integration_id) == truth(base)


async def test_a_webhook_look_up_reads_every_variant_and_line(
    sandbox: tuple[str, Any],
) -> None:
    """products/update and orders/updated read their nodes by id (`nodes(ids:)`, one query for
    many): beyond the first page of 10 variants or lines too, and a gone one is told apart."""
    base, _ = sandbox
    httpx.post(
        f"{base}/_sandbox/shopify/shops", headers=control_headers(base),
        json={"shop": SHOP, "products": 3, "variants_per_product": 45, "orders": 2,
              "lines_per_order": 60},
    ).raise_for_status()  # fmt: skip
    credentials = MemoryCredentialStore(
        StoredCredential("access_token", shopify_install(base, SHOP))
    )
    connector = ShopifyConnector(
        ShopifyConfig(
            client_id="sandbox-shopify-client-id",
            client_secret=apps(base).shopify_client_secret,
            scopes=("read_products",),
            base_url=f"{base}/shopify",
        )
    )
    products = await connector.fetch_nodes(
        SHOP, credentials, "product", ["gid://shopify/Product/1000001"]
    )
    orders = await connector.fetch_nodes(
        SHOP, credentials, "order", ["gid://shopify/Order/5000001", "gid://shopify/Order/5000099"]
    )
    product = products.nodes["gid://shopify/Product/1000001"]
    order = orders.nodes["gid://shopify/Order/5000001"]
    variants = [v["id"] for v in product["variants"]["nodes"]]
    assert len(variants) == len(set(variants)) == 45
    assert len({line["id"] for line in order["lineItems"]["nodes"]}) == 60
    # The order that does not exist is neither found nor incomplete: gone.
    assert set(orders.nodes) == {"gid://shopify/Order/5000001"}
    assert orders.incomplete == {} and products.incomplete == {}


async def test_a_removed_variant_or_line_item_is_deleted_by_the_next_incremental_run(
    session: Session, sandbox: tuple[str, Any]
) -> None:
    """The merchant deletes a variant and edits a line item out of an order: the next
    incremental runs store the products and orders again, with every variant and line read
    to the end, and the hub's live variants and lines equal Shopify's."""
    base, _ = sandbox
    integration_id = connect(
        session, base, products=12, variants_per_product=20, orders=10, lines_per_order=20,
        customers=3, locations=1, plan="plus",
    )  # fmt: skip
    engine = engine_for(base)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    before = truth(base)
    assert stored_checksums(integration_id) == before
    removed = httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/mutate",
        headers=control_headers(base),
        json={"remove_variants": 3, "remove_lines": 2},
    ).json()
    assert (removed["removed_variants"], removed["removed_lines"]) == (3, 2)
    after = truth(base)
    assert after["variants"]["count"] == int(str(before["variants"]["count"])) - 3
    assert after["order_lines"]["count"] == int(str(before["order_lines"]["count"])) - 2

    runs = await engine.request_sync(integration_id=integration_id, stream="products")
    runs += await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    with session_scope() as s:
        products_run, orders_run = (s.get(SyncRun, run_id) for run_id in runs)
        assert products_run is not None and orders_run is not None
        assert (products_run.records_deleted, orders_run.records_deleted) == (3, 2)
    stored = stored_checksums(integration_id)
    for name in ("products", "variants", "orders", "order_lines"):
        assert stored[name] == after[name], name
