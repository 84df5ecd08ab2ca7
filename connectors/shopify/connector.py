"""ShopifyConnector: the Connector interface over the Admin GraphQL API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors.auth import ACCESS_TOKEN
from connectors.base import (
    Batch,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordKind,
    StreamSpec,
)
from connectors.errors import InvalidInput, MalformedResponse, PlatformError
from connectors.shopify import auth, bulk, queries
from connectors.shopify.bulk import BulkPolicy, BulkUnavailable
from connectors.shopify.client import SINGLE_QUERY_MAX_COST, ShopifyClient
from connectors.shopify.streams import (
    DELETION_KEYS,
    NESTED_OF_KIND,
    STREAM_QUERIES,
    complete_nested,
    count,
    latest_deletions,
    read_window,
    reconcile,
    reconcile_due,
)

# Without it Shopify lists only the last 60 days of orders: a reconciliation would take the
# older ones for deleted.
ALL_ORDERS_SCOPE = "read_all_orders"
log = logging.getLogger("connectors.shopify")


@dataclass(frozen=True)
class ShopifyConfig:
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    base_url: str | None  # None: the real https://{shop}
    bulk_threshold: int = 10_000  # a backfill of more records runs as a bulk operation
    bulk_policy: BulkPolicy = field(default_factory=BulkPolicy)
    # How often products, orders and customers list their live ids to find deletions that
    # no webhook or event told; None: never.
    reconcile_every: timedelta | None = timedelta(hours=24)


class ShopifyConnector(Connector):
    platform: ClassVar[str] = "shopify"
    label: ClassVar[str] = "Shopify"
    streams: ClassVar[tuple[StreamSpec, ...]] = (
        StreamSpec(
            "products",
            "Products",
            "Products and their variants",
            (RecordKind.PRODUCT, RecordKind.VARIANT),
            15,
        ),
        StreamSpec(
            "inventory",
            "Inventory",
            "Stock per inventory item and location",
            (RecordKind.INVENTORY_LEVEL,),
            15,
        ),
        StreamSpec(
            "orders",
            "Orders",
            "Orders and their line items",
            (RecordKind.ORDER, RecordKind.ORDER_LINE),
            5,
        ),
        StreamSpec("customers", "Customers", "Customer profiles", (RecordKind.CUSTOMER,), 60),
    )

    def __init__(
        self, config: ShopifyConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.transport = transport

    @classmethod
    def from_settings(
        cls, values: Mapping[str, Any], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> ShopifyConnector:
        if not values.get("shopify_client_id") or not values.get("shopify_client_secret"):
            raise InvalidInput(
                "Shopify app credentials are not configured "
                "(HUB_SHOPIFY_CLIENT_ID / HUB_SHOPIFY_CLIENT_SECRET)"
            )
        scopes = tuple(
            s.strip() for s in str(values.get("shopify_scopes", "")).split(",") if s.strip()
        )
        return cls(ShopifyConfig(
            client_id=values["shopify_client_id"], client_secret=values["shopify_client_secret"],
            scopes=scopes, base_url=values.get("shopify_base_url"),
            bulk_threshold=int(
                10_000 if values.get("shopify_bulk_threshold") is None
                else values["shopify_bulk_threshold"]
            ),
            reconcile_every=_hours(values.get("shopify_reconcile_hours", 24.0)),
        ), transport)  # fmt: skip

    def base_url(self, shop: str) -> str:
        return auth.shop_base_url(shop, self.config.base_url)

    def client(self, shop: str, credentials: CredentialStore, *, urgent: bool) -> ShopifyClient:
        """A client of the shop whose token comes from (and is refreshed into) ``credentials``.

        ``urgent`` (all but a sync's reads; each caller says which): someone waits on the
        answer, a webhook's record or a person connecting the shop, so its queries go ahead
        of sync pages waiting for the shop's cost bucket.
        """
        endpoint = auth.token_endpoint(
            shop=shop,
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            base_url=self.config.base_url,
            transport=self.transport,
        )
        return ShopifyClient(
            shop=shop,
            base_url=self.base_url(shop),
            token=auth.token_flow(endpoint, credentials),
            transport=self.transport,
            urgent=urgent,
        )

    async def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        self.stream(stream)  # KeyError for an unknown stream
        if not integration.shop_domain:
            raise InvalidInput("this integration has no shop domain")
        client = self.client(integration.shop_domain, credentials, urgent=False)
        token = await credentials.get(ACCESS_TOKEN)
        reconciles = STREAM_QUERIES[stream].ids is not None and (
            stream != "orders" or ALL_ORDERS_SCOPE in (token.scopes if token else [])
        )
        start = None if full_refresh else cursor
        # A full pass: a backfill (no window started yet), or a window whose reconciliation
        # listed every live id. The platform's own count, read as it ends, goes with it.
        full_pass = not (start or {}).get("since")
        last: Batch | None = None
        try:
            async for batch in self._read(client, stream, start, reconciles=reconciles):
                full_pass = full_pass or batch.snapshot is not None
                last = batch
                yield batch
            counted = STREAM_QUERIES[stream].count
            if full_pass and counted and last is not None:
                try:
                    total = await count(client, counted)
                except PlatformError as error:  # completeness is a check, not the sync
                    log.warning("%s on %s: cannot count (%s)", stream, client.shop, error)
                else:
                    yield Batch(
                        [], last.cursor, total_hint=last.total_hint, pages=0, done=last.done,
                        platform_count=total,
                    )  # fmt: skip
        finally:
            await client.aclose()

    async def _read(
        self,
        client: ShopifyClient,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        reconciles: bool = False,
    ) -> AsyncIterator[Batch]:
        """Windows of pages, each started by a reconciliation when one is due; a backfill
        above the bulk threshold as a bulk operation."""
        cursor = dict(cursor or {})
        spec = STREAM_QUERIES[stream]
        carry = {k: cursor[k] for k in DELETION_KEYS if k in cursor}
        if cursor.get("bulk"):  # an operation started by an earlier run
            try:
                async for batch in bulk.backfill(
                    client, stream, cursor, total=None, policy=self.config.bulk_policy,
                    transport=self.transport,
                ):  # fmt: skip
                    yield batch
                return
            except BulkUnavailable as error:
                log.warning("%s on %s: %s; reading page by page", stream, client.shop, error)
                async for batch in read_window(client, stream, carry):
                    yield batch
                return
        if cursor.get("since") or cursor.get("after"):  # a window is under way
            if (
                reconciles
                and cursor.get("after") is None
                and reconcile_due(cursor, self.config.reconcile_every, datetime.now(UTC))
            ):
                if not cursor.get("reconcile"):
                    last = cursor.get("reconciled_at") or "never"
                    log.info("%s on %s: reconciling ids to find deletions (last done %s)",
                             stream, client.shop, last)  # fmt: skip
                async for batch in reconcile(client, stream, cursor):
                    yield batch
                    cursor = dict(batch.cursor or cursor)
            async for batch in read_window(client, stream, cursor):
                yield batch
            return
        # Backfill. Deletions from now on concern records it stores: remember where they start.
        if spec.deletions and "deleted_since" not in cursor:
            cursor.update(await latest_deletions(client))
        try:
            total: int | None = await count(client, spec.backfill_count)
        except PlatformError as error:  # e.g. productVariantsCount needs read_products
            log.warning("%s on %s: cannot size the backfill (%s)", stream, client.shop, error)
            total = None
        if total is not None and total > self.config.bulk_threshold:
            try:
                async for batch in bulk.backfill(
                    client, stream, cursor, total=total, policy=self.config.bulk_policy,
                    transport=self.transport,
                ):  # fmt: skip
                    yield batch
                return
            except BulkUnavailable as error:
                log.warning("%s on %s: %s; reading page by page", stream, client.shop, error)
                cursor = {k: cursor[k] for k in DELETION_KEYS if k in cursor}
        async for batch in read_window(client, stream, cursor, total=total or None):
            yield batch

    # --- set-up after connecting -------------------------------------------------------------

    async def fetch_shop(self, shop: str, credentials: CredentialStore) -> dict[str, Any]:
        client = self.client(shop, credentials, urgent=True)
        try:
            data = await client.query("Shop", queries.SHOP, expected_cost=2)
        finally:
            await client.aclose()
        info = data["shop"]
        return {
            "name": info.get("name"),
            "plan": (info.get("plan") or {}).get("publicDisplayName"),
            "currency": info.get("currencyCode"),
            "timezone": info.get("ianaTimezone"),
            "email": info.get("email"),
        }

    async def subscribe_webhooks(
        self,
        shop: str,
        credentials: CredentialStore,
        callback_url: str,
        topics: Sequence[str] = queries.WEBHOOK_TOPICS,
    ) -> dict[str, str | None]:
        """Subscribe ``topics`` (every topic the hub needs by default); returns topic ->
        subscription id. Raises InvalidInput when Shopify refuses one."""
        client = self.client(shop, credentials, urgent=True)
        result: dict[str, str | None] = {}
        try:
            for topic in topics:
                data = await client.query(
                    "WebhookSubscribe",
                    queries.WEBHOOK_SUBSCRIBE,
                    {"topic": topic, "uri": callback_url},
                    expected_cost=10,
                )
                payload = data.get("webhookSubscriptionCreate") or {}
                subscription = payload.get("webhookSubscription") or {}
                errors = payload.get("userErrors") or []
                taken = any("already been taken" in str(e.get("message")) for e in errors)
                if errors and not taken:
                    raise InvalidInput(f"subscribing {topic} failed: {errors[0]['message']}")
                result[topic] = subscription.get("id")
        finally:
            await client.aclose()
        return result

    async def list_webhook_subscriptions(
        self, shop: str, credentials: CredentialStore
    ) -> list[dict[str, str]]:
        """The app's webhook subscriptions in the shop: ``{"id", "topic", "uri"}`` each."""
        client = self.client(shop, credentials, urgent=True)
        found: list[dict[str, str]] = []
        after: str | None = None
        try:
            while True:
                data = await client.query(
                    "WebhookSubscriptions", queries.WEBHOOK_SUBSCRIPTIONS, {"after": after},
                    expected_cost=12,
                )  # fmt: skip
                connection = data.get("webhookSubscriptions") or {}
                found.extend(
                    {"id": str(node.get("id")), "topic": str(node.get("topic")),
                     "uri": str(node.get("uri") or "")}
                    for node in connection.get("nodes") or []
                )  # fmt: skip
                page = connection.get("pageInfo") or {}
                if not page.get("hasNextPage") or not page.get("endCursor"):
                    return found
                after = page["endCursor"]
        finally:
            await client.aclose()

    async def fetch_nodes(
        self, shop: str, credentials: CredentialStore, kind: str, node_ids: Sequence[str]
    ) -> FetchedNodes:
        """The current products or orders behind webhooks, each with every variant or line
        item: one ``nodes(ids:)`` query per ``NODES_BY_IDS`` ids, then the follow-up queries
        of the long ones. An id in neither ``nodes`` nor ``incomplete`` no longer exists.

        Raises the client's typed errors (AuthError, TransientError, ...) for the whole look-up.
        """
        name, document, per_query = queries.NODES_BY_IDS[kind]
        nested = NESTED_OF_KIND[kind]
        fetched = FetchedNodes()
        client = self.client(shop, credentials, urgent=True)
        try:
            unique = list(dict.fromkeys(node_ids))
            for start in range(0, len(unique), per_query):
                ids = unique[start : start + per_query]
                # Until Shopify has priced a look-up of this many ids: a full batch stays
                # within the most a query may cost, priced per id. (A full batch's price for
                # a look-up of 2 ids reserved the whole bucket: it waited for every sync page.)
                per_id = SINGLE_QUERY_MAX_COST / per_query
                data = await client.query(
                    name, document, {"ids": ids}, expected_cost=len(ids) * per_id
                )
                answered = data.get("nodes")
                if not isinstance(answered, list) or len(answered) != len(ids):
                    raise MalformedResponse(f"{name}: not one answer per id")
                for node_id, node in zip(ids, answered, strict=True):
                    # None, or another type under that id (the fragment selects nothing): gone.
                    if not isinstance(node, dict) or not node.get("id"):
                        continue
                    if nested is not None and not await complete_nested(client, nested, node):
                        fetched.incomplete[node_id] = (
                            f"{name}: the {nested.field} of {node_id} were cut short"
                        )
                        continue
                    fetched.nodes[node_id] = node
        finally:
            await client.aclose()
        return fetched


@dataclass
class FetchedNodes:
    """What ``ShopifyConnector.fetch_nodes`` found, by global id."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # complete
    # Nested variants or line items that could not be read to the end (deleted meanwhile?):
    # why, by id; try again later.
    incomplete: dict[str, str] = field(default_factory=dict)


def _hours(value: Any) -> timedelta | None:
    """HUB_SHOPIFY_RECONCILE_HOURS as a period; 0 (or unset) turns reconciliation off."""
    hours = float(value or 0)
    return timedelta(hours=hours) if hours > 0 else None
