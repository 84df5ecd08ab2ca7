"""Shopify streams: Admin API nodes -> unified records, read in windows of ``updated_at``.

A window starts at the checkpoint's ``since`` (the high-water mark of the previous window
minus a small overlap, so records written while we read are not missed) and pages through
with Shopify's cursor. The overlap re-reads a few records; upserts make that harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.base import Batch, RecordError, RecordKind, UnifiedRecord
from connectors.shopify import queries
from connectors.shopify.client import ShopifyClient

OVERLAP = timedelta(minutes=2)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _nodes(connection: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((connection or {}).get("nodes") or [])


def normalize_product(node: dict[str, Any]) -> list[UnifiedRecord]:
    updated = parse_time(node["updatedAt"])
    records = [UnifiedRecord(
        kind=RecordKind.PRODUCT, external_id=node["id"], raw=node, remote_updated_at=updated,
        fields={"title": node.get("title") or "", "handle": node.get("handle"),
                "vendor": node.get("vendor"), "product_type": node.get("productType"),
                "status": node.get("status"),
                "remote_created_at": parse_time(node.get("createdAt"))},
    )]  # fmt: skip
    for variant in _nodes(node.get("variants")):
        records.append(UnifiedRecord(
            kind=RecordKind.VARIANT, external_id=variant["id"], raw=variant,
            remote_updated_at=updated,
            fields={"product_external_id": node["id"], "title": variant.get("title") or "",
                    "sku": variant.get("sku"), "barcode": variant.get("barcode"),
                    "price": variant.get("price"),
                    "inventory_item_id": (variant.get("inventoryItem") or {}).get("id"),
                    "inventory_quantity": variant.get("inventoryQuantity")},
        ))  # fmt: skip
    return records


def normalize_inventory_item(node: dict[str, Any]) -> list[UnifiedRecord]:
    records = []
    for level in _nodes(node.get("inventoryLevels")):
        quantities = {q["name"]: q["quantity"] for q in level.get("quantities") or []}
        location = level.get("location") or {}
        records.append(UnifiedRecord(
            kind=RecordKind.INVENTORY_LEVEL, external_id=level["id"], raw=level,
            remote_updated_at=parse_time(level.get("updatedAt") or node.get("updatedAt")),
            fields={"inventory_item_id": node["id"], "location_id": location.get("id", ""),
                    "location_name": location.get("name"), "sku": node.get("sku"),
                    "available": quantities.get("available"),
                    "on_hand": quantities.get("on_hand"),
                    "reserved": quantities.get("reserved"),
                    "inbound": quantities.get("incoming")},
        ))  # fmt: skip
    return records


def normalize_order(node: dict[str, Any]) -> list[UnifiedRecord]:
    updated = parse_time(node["updatedAt"])
    money = (node.get("totalPriceSet") or {}).get("shopMoney") or {}
    records = [UnifiedRecord(
        kind=RecordKind.ORDER, external_id=node["id"], raw=node, remote_updated_at=updated,
        fields={"name": node.get("name"), "email": node.get("email"),
                "financial_status": node.get("displayFinancialStatus"),
                "fulfillment_status": node.get("displayFulfillmentStatus"),
                "currency": node.get("currencyCode"), "total_price": money.get("amount"),
                "customer_external_id": (node.get("customer") or {}).get("id"),
                "placed_at": parse_time(node.get("createdAt")),
                "cancelled_at": parse_time(node.get("cancelledAt"))},
    )]  # fmt: skip
    for line in _nodes(node.get("lineItems")):
        price = (line.get("originalUnitPriceSet") or {}).get("shopMoney") or {}
        records.append(UnifiedRecord(
            kind=RecordKind.ORDER_LINE, external_id=line["id"], raw=line,
            remote_updated_at=updated,
            fields={"order_external_id": node["id"], "sku": line.get("sku"),
                    "title": line.get("title"), "quantity": int(line.get("quantity") or 0),
                    "price": price.get("amount"),
                    "product_external_id": (line.get("product") or {}).get("id"),
                    "variant_external_id": (line.get("variant") or {}).get("id")},
        ))  # fmt: skip
    return records


def normalize_customer(node: dict[str, Any]) -> list[UnifiedRecord]:
    spent = node.get("amountSpent") or {}
    return [UnifiedRecord(
        kind=RecordKind.CUSTOMER, external_id=node["id"], raw=node,
        remote_updated_at=parse_time(node["updatedAt"]),
        fields={"email": (node.get("defaultEmailAddress") or {}).get("emailAddress"),
                "first_name": node.get("firstName"), "last_name": node.get("lastName"),
                "state": node.get("state"),
                "orders_count": int(node["numberOfOrders"]) if node.get("numberOfOrders")
                is not None else None,
                "total_spent": spent.get("amount"),
                "remote_created_at": parse_time(node.get("createdAt"))},
    )]  # fmt: skip


@dataclass(frozen=True)
class StreamQuery:
    query_name: str
    document: str
    root: str
    normalize: Callable[[dict[str, Any]], list[UnifiedRecord]]
    count: str | None


STREAM_QUERIES = {
    "products": StreamQuery(
        "Products", queries.PRODUCTS, "products", normalize_product, "products"
    ),
    "inventory": StreamQuery(
        "Inventory", queries.INVENTORY, "inventoryItems", normalize_inventory_item, None
    ),
    "orders": StreamQuery("Orders", queries.ORDERS, "orders", normalize_order, "orders"),
    "customers": StreamQuery(
        "Customers", queries.CUSTOMERS, "customers", normalize_customer, "customers"
    ),
}


async def read_window(
    client: ShopifyClient,
    stream: str,
    cursor: dict[str, Any] | None,
    *,
    page_size: int | None = None,
) -> AsyncIterator[Batch]:
    """Pages of ``stream`` from the checkpoint; each Batch carries the checkpoint after it."""
    spec = STREAM_QUERIES[stream]
    page_size = page_size or queries.PAGE_SIZES[stream]
    cursor = cursor or {}
    since, after, high = cursor.get("since"), cursor.get("after"), cursor.get("high_water")
    search = f"updated_at:>='{since}'" if since else None
    total = None
    if spec.count and after is None:
        counted = await client.query(
            f"{spec.query_name}Count",
            queries.COUNTS[spec.count],
            {"query": search},
            expected_cost=5,
        )
        total = int((counted.get(f"{spec.count}Count") or {}).get("count") or 0) or None
    done = int(cursor.get("done") or 0)
    while True:
        data = await client.query(
            spec.query_name, spec.document, {"first": page_size, "after": after, "query": search}
        )
        connection = data.get(spec.root) or {}
        records: list[UnifiedRecord] = []
        errors: list[RecordError] = []
        nodes = _nodes(connection)
        for node in nodes:
            try:
                records.extend(spec.normalize(node))
            except (KeyError, TypeError, ValueError) as error:
                errors.append(
                    RecordError(
                        node.get("id") if isinstance(node, dict) else None,
                        f"cannot read {spec.root} node: {error!r}",
                        node,
                    )
                )
                continue
            updated = node.get("updatedAt")
            if updated and (high is None or updated > high):
                high = updated
        done += len(nodes)
        page_info = connection.get("pageInfo") or {}
        if page_info.get("hasNextPage"):
            after = page_info.get("endCursor")
            next_cursor = {"since": since, "after": after, "high_water": high, "done": done}
        else:
            # Window complete: the next run starts a little before the newest change seen.
            newest = parse_time(high) if high else None
            next_since = _iso(newest - OVERLAP) if newest else since
            next_cursor = {"since": next_since, "after": None, "high_water": high}
        yield Batch(records=records, errors=errors, cursor=next_cursor, total_hint=total, done=done)
        if not page_info.get("hasNextPage"):
            return
