"""Shopify streams: Admin API nodes -> unified records, read in windows of ``updated_at``.

A window starts at the checkpoint's ``since`` (the high-water mark of the previous window
minus a small overlap, so records written while we read are not missed) and pages through
with Shopify's cursor. The overlap re-reads a few records; upserts make that harmless.

Deleted products do not show up in any window. An incremental products window first reads
the shop's product ``destroy`` events (``events``; ``deletionEvents`` is deprecated) and
marks those products deleted. The events log has its own checkpoint: ``deleted_since``,
the newest event seen minus the same overlap, and ``deleted_seen``, the ids of the events
inside that overlap, which are not applied twice. A backfill starts it at the newest
deletion before it began: older deletions concern nothing it stores.

Orders and customers leave no such events, so a periodic reconciliation lists every live id
(id only, ascending, cheap in cost points) and ends with a ``SnapshotComplete``: stored records
the listing did not show are gone from Shopify. Its state lives in the cursor (``reconcile``
while under way, ``reconciled_at`` once done), so a crash resumes it.

A page reads the first few nested nodes of each node (variants, line items, inventory levels);
when a node has more, follow-up queries page that one connection to its end. A node read to
the end is named in its batch's ``ChildrenComplete``: its stored children that it no longer
lists (a variant removed from its product, a line item edited out of its order, a location
the item left) are gone.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import (
    Batch,
    ChildrenComplete,
    RecordError,
    RecordKind,
    SeenIds,
    SnapshotComplete,
    UnifiedRecord,
)
from connectors.errors import MalformedResponse
from connectors.shopify import queries
from connectors.shopify.client import ShopifyClient

OVERLAP = timedelta(minutes=2)
# ``deleted_since`` when the shop had no product deletion when its first window started.
BEGINNING = "1970-01-01T00:00:00Z"
DELETION_KEYS = ("deleted_since", "deleted_seen")  # the events checkpoint inside a cursor
# What a window's cursor carries along unchanged: the events checkpoint, the last reconciliation.
CARRIED_KEYS = (*DELETION_KEYS, "reconciled_at")
SEEN_LIMIT = 1_000  # ids kept in ``deleted_seen``; beyond it a re-read is harmless anyway


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_precise(moment: datetime) -> str:
    """Microseconds kept: compared with the engine's ``synced_at`` (our clock, not Shopify's)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
class NestedQuery:
    """Reads the rest of a node's nested connection: ``root(id:) { field(first:, after:) }``."""

    field: str
    query_name: str
    document: str
    root: str
    kind: RecordKind  # the records the nested nodes become


@dataclass(frozen=True)
class IdQuery:
    """Lists a stream's live ids for a reconciliation (``sortKey: ID``, ``id:>`` filter)."""

    query_name: str
    document: str
    root: str
    kind: RecordKind
    count: str  # COUNTS key: the progress total


@dataclass(frozen=True)
class StreamQuery:
    query_name: str
    document: str
    root: str
    normalize: Callable[[dict[str, Any]], list[UnifiedRecord]]
    count: str | None  # COUNTS key giving a window's progress total
    backfill_count: str  # COUNTS key sizing a backfill (bulk operation or pages)
    bulk_document: str
    children: dict[str, str]  # bulk lines with __parentId: GraphQL type -> connection field
    deletions: bool = False  # read destroy events at the start of incremental windows
    nested: NestedQuery | None = None  # the nested connection a page reads only the start of
    ids: IdQuery | None = None  # how a reconciliation lists the live ids


STREAM_QUERIES = {
    "products": StreamQuery(
        "Products", queries.PRODUCTS, "products", normalize_product, "products", "products",
        queries.BULK_PRODUCTS, {"ProductVariant": "variants"}, deletions=True,
        nested=NestedQuery("variants", "ProductVariants", queries.PRODUCT_VARIANTS, "product",
                           RecordKind.VARIANT),
        ids=IdQuery("ProductIds", queries.PRODUCT_IDS, "products", RecordKind.PRODUCT,
                    "products"),
    ),
    "inventory": StreamQuery(
        "Inventory", queries.INVENTORY, "inventoryItems", normalize_inventory_item, None,
        "productVariants", queries.BULK_INVENTORY, {"InventoryLevel": "inventoryLevels"},
        nested=NestedQuery("inventoryLevels", "InventoryItemLevels",
                           queries.INVENTORY_ITEM_LEVELS, "inventoryItem",
                           RecordKind.INVENTORY_LEVEL),
    ),
    "orders": StreamQuery(
        "Orders", queries.ORDERS, "orders", normalize_order, "orders", "orders",
        queries.BULK_ORDERS, {"LineItem": "lineItems"},
        nested=NestedQuery("lineItems", "OrderLineItems", queries.ORDER_LINE_ITEMS, "order",
                           RecordKind.ORDER_LINE),
        ids=IdQuery("OrderIds", queries.ORDER_IDS, "orders", RecordKind.ORDER, "orders"),
    ),
    "customers": StreamQuery(
        "Customers", queries.CUSTOMERS, "customers", normalize_customer, "customers",
        "customers", queries.BULK_CUSTOMERS, {},
        ids=IdQuery("CustomerIds", queries.CUSTOMER_IDS, "customers", RecordKind.CUSTOMER,
                    "customers"),
    ),
}  # fmt: skip
# A node fetched by id (webhook look-ups) has the same nested connection as its stream's pages.
NESTED_OF_KIND = {"product": STREAM_QUERIES["products"].nested,
                  "order": STREAM_QUERIES["orders"].nested}  # fmt: skip


async def complete_nested(client: ShopifyClient, nested: NestedQuery, node: dict[str, Any]) -> bool:
    """Read the rest of ``node``'s nested connection when its first page was not all of it.

    Changes ``node`` in place: the connection ends as ``{"nodes": [...]}``, every nested node,
    the shape a bulk export's joined lines have. Each follow-up query pays the shop's bucket
    like any other. Returns whether the connection now holds every nested node: not when it
    is missing, says nothing of further pages, or the node vanished while being read.
    """
    connection = node.get(nested.field)
    if not isinstance(connection, dict):
        return False
    page_info = connection.pop("pageInfo", None)
    if not isinstance(page_info, dict):
        return False
    nodes = _nodes(connection)
    after = page_info.get("endCursor")
    while page_info.get("hasNextPage") and after:
        data = await client.query(
            nested.query_name, nested.document, {"id": node["id"], "after": after}
        )
        parent = data.get(nested.root)
        if not isinstance(parent, dict):  # gone since the page: its deletion arrives later
            break
        more = parent.get(nested.field) or {}
        nodes.extend(_nodes(more))
        page_info = more.get("pageInfo") or {}
        after = page_info.get("endCursor")
    connection["nodes"] = nodes
    return not page_info.get("hasNextPage")


def children_complete(spec: StreamQuery, parent_ids: list[str]) -> ChildrenComplete | None:
    """The batch's ``ChildrenComplete`` for nodes of ``spec`` that came with every nested node."""
    if spec.nested is None or not parent_ids:
        return None
    return ChildrenComplete(spec.nested.kind, tuple(parent_ids))


def count_query_name(key: str) -> str:
    return f"{key[0].upper()}{key[1:]}Count"


async def count(client: ShopifyClient, key: str, search: str | None = None) -> int:
    """Shopify's exact count (``limit: null``) of a COUNTS key, optionally filtered."""
    counted = await client.query(
        count_query_name(key), queries.COUNTS[key], {"query": search}, expected_cost=5
    )
    return int((counted.get(f"{key}Count") or {}).get("count") or 0)


def tombstone(event: dict[str, Any]) -> UnifiedRecord:
    """A product marked deleted from its ``destroy`` event (the event is kept as ``raw``)."""
    return UnifiedRecord(
        kind=RecordKind.PRODUCT,
        external_id=event["subjectId"],
        fields={},
        raw=event,
        remote_updated_at=parse_time(event.get("createdAt")),
        deleted=True,
    )


def _events_mark(recent: list[tuple[datetime, str]], fallback: dict[str, Any]) -> dict:
    """The events checkpoint after reading ``recent`` (created, id), oldest first."""
    if not recent:
        return fallback
    lower = recent[-1][0] - OVERLAP
    inside = [event_id for created, event_id in recent if created >= lower]
    return {"deleted_since": format_time(lower), "deleted_seen": inside[-SEEN_LIMIT:]}


async def latest_deletions(client: ShopifyClient) -> dict[str, Any]:
    """The events checkpoint of a backfill: just before the shop's newest product deletion
    (Shopify's clock), those deletions marked seen; BEGINNING when it has none."""
    data = await client.query(
        "LatestProductDeletions", queries.LATEST_PRODUCT_DELETIONS, expected_cost=252
    )
    recent = [
        (created, str(event["id"]))
        for event in reversed(_nodes(data.get("events")))
        if (created := parse_time(event.get("createdAt"))) and event.get("id")
    ]
    return _events_mark(recent, {"deleted_since": BEGINNING, "deleted_seen": []})


async def read_deletions(
    client: ShopifyClient, mark: dict[str, Any]
) -> AsyncIterator[tuple[list[UnifiedRecord], list[RecordError], dict[str, Any]]]:
    """Pages of tombstones for products destroyed since the events checkpoint ``mark``,
    each with the checkpoint after it."""
    since = mark.get("deleted_since") or BEGINNING
    seen = set(mark.get("deleted_seen") or ())
    search = f"subject_type:PRODUCT action:destroy created_at:>='{since}'"
    recent: list[tuple[datetime, str]] = []  # events read, oldest first, pruned to the overlap
    after = None
    while True:
        data = await client.query(
            "ProductDeletions", queries.PRODUCT_DELETIONS, {"after": after, "query": search}
        )
        connection = data.get("events") or {}
        records, errors = [], []
        for event in _nodes(connection):
            created = parse_time(event.get("createdAt"))
            if created and event.get("id"):
                recent.append((created, str(event["id"])))
            if event.get("id") in seen:
                continue  # applied by an earlier run (inside the overlap)
            if event.get("action") != "destroy" or event.get("subjectType") != "PRODUCT":
                continue
            try:
                records.append(tombstone(event))
            except (KeyError, TypeError, ValueError) as error:
                errors.append(RecordError(event.get("id"), f"cannot read event: {error!r}", event))
        if recent:
            newest = recent[-1][0]
            recent = [r for r in recent if r[0] >= newest - OVERLAP]
        yield records, errors, _events_mark(recent, dict(mark))
        page_info = connection.get("pageInfo") or {}
        if not page_info.get("hasNextPage"):
            return
        after = page_info.get("endCursor")


async def read_window(
    client: ShopifyClient,
    stream: str,
    cursor: dict[str, Any] | None,
    *,
    page_size: int | None = None,
    total: int | None = None,
) -> AsyncIterator[Batch]:
    """Pages of ``stream`` from the checkpoint; each Batch carries the checkpoint after it.

    ``total``: the window's size when the caller counted it already (no count query then).
    """
    spec = STREAM_QUERIES[stream]
    page_size = page_size or queries.PAGE_SIZES[stream]
    cursor = cursor or {}
    since, after, high = cursor.get("since"), cursor.get("after"), cursor.get("high_water")
    search = f"updated_at:>='{since}'" if since else None
    carry: dict[str, Any] = {k: cursor[k] for k in CARRIED_KEYS if k in cursor}
    if spec.deletions and since and after is None:  # an incremental window: deletions first
        # A checkpoint from before events were read starts at its window.
        start = carry if carry.get("deleted_since") else {"deleted_since": since}
        async for tombstones, problems, mark in read_deletions(client, start):
            carry = {**carry, **mark}
            yield Batch(records=tombstones, errors=problems, cursor={**cursor, **carry})
    if total is None and spec.count and after is None:
        total = await count(client, spec.count, search) or None
    done = int(cursor.get("done") or 0)
    while True:
        data = await client.query(
            spec.query_name, spec.document, {"first": page_size, "after": after, "query": search}
        )
        connection = data.get(spec.root) or {}
        records: list[UnifiedRecord] = []
        errors: list[RecordError] = []
        complete: list[str] = []  # nodes that came with every nested node
        nodes = _nodes(connection)
        for node in nodes:
            try:
                whole = spec.nested is not None and await complete_nested(client, spec.nested, node)
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
            if whole:
                complete.append(node["id"])
            updated = node.get("updatedAt")
            if updated and (high is None or updated > high):
                high = updated
        done += len(nodes)
        page_info = connection.get("pageInfo") or {}
        if page_info.get("hasNextPage"):
            after = page_info.get("endCursor")
            next_cursor = {
                "since": since, "after": after, "high_water": high, "done": done, **carry
            }  # fmt: skip
        else:
            # Window complete: the next run starts a little before the newest change seen.
            newest = parse_time(high) if high else None
            next_since = format_time(newest - OVERLAP) if newest else since
            next_cursor = {"since": next_since, "after": None, "high_water": high, **carry}
        yield Batch(
            records=records, errors=errors, cursor=next_cursor, total_hint=total, done=done,
            children_complete=children_complete(spec, complete),
        )  # fmt: skip
        if not page_info.get("hasNextPage"):
            return


def reconcile_due(cursor: dict[str, Any], every: timedelta | None, now: datetime) -> bool:
    """Whether a run starting a window reconciles first: one is under way, or the last one is
    older than ``every`` (or there was none: the first window after a backfill)."""
    if every is None or not cursor.get("since"):
        return False
    if cursor.get("reconcile"):
        return True
    last = parse_time(cursor.get("reconciled_at"))
    return last is None or now - last >= every


def _id_number(external_id: str) -> int:
    return int(external_id.rsplit("/", 1)[-1])


async def reconcile(
    client: ShopifyClient, stream: str, cursor: dict[str, Any]
) -> AsyncIterator[Batch]:
    """List every live id of ``stream`` (ascending), a page per batch; the last batch completes
    the snapshot, so the engine marks the stored records that were not listed as deleted.

    The pass's state is the cursor's ``reconcile``: when it started (our clock, compared with
    ``synced_at``), on which host, the last id listed and the count. Records listed before a
    crash keep their new ``synced_at``, so resuming after the last id loses nothing. Another
    host's clock may lag behind the one that started the pass, and its ``synced_at`` would
    look older than the start: there the pass starts over. The window keys of the cursor are
    carried unchanged; the last batch replaces ``reconcile`` by ``reconciled_at``.
    """
    ids = STREAM_QUERIES[stream].ids
    assert ids is not None, f"{stream} has no reconciliation"
    state = dict(cursor.get("reconcile") or {})
    host = socket.gethostname()
    if state.get("host") != host:
        state = {}
    window = {k: v for k, v in cursor.items() if k != "reconcile"}
    started = state.get("started_at") or format_precise(datetime.now(UTC))
    last_id = state.get("after_id")
    done = int(state.get("done") or 0)
    total = state.get("total")
    if total is None:
        total = await count(client, ids.count)
    while True:
        search = f"id:>{last_id}" if last_id is not None else None
        data = await client.query(ids.query_name, ids.document, {"query": search})
        connection = data.get(ids.root) or {}
        listed = [str(n["id"]) for n in _nodes(connection) if isinstance(n, dict) and n.get("id")]
        try:
            numbers = [_id_number(external_id) for external_id in listed]
        except ValueError as error:
            raise MalformedResponse(f"{ids.query_name}: an id without a number") from error
        has_next = bool((connection.get("pageInfo") or {}).get("hasNextPage"))
        if has_next and not numbers:
            raise MalformedResponse(f"{ids.query_name}: an empty page that says more follow")
        if numbers and last_id is not None and min(numbers) <= last_id:
            # Shopify ignoring the id filter would make this loop forever: stop instead.
            raise MalformedResponse(f"{ids.query_name}: ids at or below {last_id} after id:>")
        done += len(listed)
        seen = SeenIds(ids.kind, tuple(listed))
        if has_next:
            last_id = max(numbers)
            state = {"started_at": started, "host": host, "after_id": last_id, "done": done,
                     "total": total}  # fmt: skip
            yield Batch(
                [], {**window, "reconcile": state}, total_hint=total or None, done=done, seen=seen
            )
            continue
        started_at = parse_time(started)
        assert started_at is not None
        yield Batch(
            [], {**window, "reconciled_at": started}, total_hint=total or None, done=done,
            seen=seen, snapshot=SnapshotComplete(ids.kind, started_at),
        )  # fmt: skip
        return
