"""AmazonConnector: the Connector interface over the Selling Partner API."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from connectors.amazon import auth
from connectors.amazon.client import BUCKETS, BucketRegistry, SpApiClient
from connectors.amazon.inventory import read_inventory
from connectors.amazon.regions import REGION_MARKETPLACES, sp_api_base, validate_region
from connectors.amazon.streams import StreamOptions, read_listings, read_orders
from connectors.auth import TokenFlow
from connectors.base import (
    Batch,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordKind,
    StreamSpec,
)
from connectors.errors import InvalidInput

READERS = {"orders": read_orders, "listings": read_listings, "inventory": read_inventory}


@dataclass(frozen=True)
class AmazonConfig:
    app_id: str
    client_id: str
    client_secret: str
    base_url: str | None  # None: Amazon's real hosts
    draft_app: bool = False
    previous_client_secret: str | None = None  # during a secret rotation
    options: StreamOptions = field(default_factory=StreamOptions)


class AmazonConnector(Connector):
    platform: ClassVar[str] = "amazon"
    label: ClassVar[str] = "Amazon Seller Central"
    streams: ClassVar[tuple[StreamSpec, ...]] = (
        StreamSpec(
            "orders",
            "Orders",
            "Orders with their items (Orders API)",
            (RecordKind.ORDER, RecordKind.ORDER_LINE),
            10,
        ),
        StreamSpec(
            "listings",
            "Listings",
            "Every listing, from the merchant listings report",
            (RecordKind.PRODUCT,),
            60,
            incremental=False,
        ),
        StreamSpec(
            "inventory",
            "FBA inventory",
            "Fulfillable, reserved and inbound stock in Amazon's warehouses",
            (RecordKind.INVENTORY_LEVEL,),
            30,
        ),
    )

    def __init__(
        self,
        config: AmazonConfig,
        transport: httpx.AsyncBaseTransport | None = None,
        buckets: BucketRegistry = BUCKETS,
    ) -> None:
        self.config = config
        self.transport = transport
        self.buckets = buckets

    @classmethod
    def from_settings(
        cls, values: Mapping[str, Any], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> AmazonConnector:
        missing = [
            name
            for name in ("amazon_app_id", "amazon_client_id", "amazon_client_secret")
            if not values.get(name)
        ]
        if missing:
            raise InvalidInput(
                "Amazon app credentials are not configured ("
                + ", ".join(f"HUB_{name.upper()}" for name in missing)
                + ")"
            )
        options = StreamOptions(
            orders_api=str(values.get("amazon_orders_api") or "v2026-01-01"),
            buyer_data=values.get("amazon_buyer_data") == "encrypted",
        )
        return cls(AmazonConfig(
            app_id=values["amazon_app_id"], client_id=values["amazon_client_id"],
            client_secret=values["amazon_client_secret"], base_url=values.get("amazon_base_url"),
            draft_app=bool(values.get("amazon_draft_app")), options=options,
            previous_client_secret=values.get("amazon_client_secret_previous") or None,
        ), transport)  # fmt: skip

    # --- tokens ---------------------------------------------------------------------------

    def token_flow(self, credentials: CredentialStore) -> TokenFlow:
        """The integration's LWA access token for SP-API calls, refreshed as it expires."""
        endpoint = auth.token_endpoint(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            base_url=self.config.base_url,
            transport=self.transport,
            previous_secret=self.config.previous_client_secret,
        )
        return auth.token_flow(endpoint, credentials)

    def client(self, integration: IntegrationRef, credentials: CredentialStore) -> SpApiClient:
        region = validate_region(integration.region)
        if not integration.selling_partner_id:
            raise InvalidInput("this integration has no selling partner id yet: connect it first")

        return SpApiClient(
            seller_id=integration.selling_partner_id,
            region=region,
            base_url=sp_api_base(region, self.config.base_url),
            auth=self.token_flow(credentials),
            transport=self.transport,
            buckets=self.buckets,
        )

    # --- streams --------------------------------------------------------------------------

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
        marketplaces = list(integration.marketplaces) or list(
            REGION_MARKETPLACES[validate_region(integration.region)][:1]
        )
        client = self.client(integration, credentials)
        try:
            reader = READERS[stream]
            options = self.config.options
            if full_refresh:  # fresh data: no report reused from before
                options = dataclasses.replace(options, report_reuse_minutes=0)
            async for batch in reader(
                client, marketplaces, None if full_refresh else cursor, options
            ):
                yield batch
        finally:
            await client.aclose()

    # --- set-up after connecting ----------------------------------------------------------

    async def marketplace_participations(
        self, integration: IntegrationRef, credentials: CredentialStore
    ) -> list[dict[str, Any]]:
        """The seller's marketplaces in this region: id, country, name, store, participating."""
        client = self.client(integration, credentials)
        try:
            body = await client.call(
                "getMarketplaceParticipations", "GET", "/sellers/v1/marketplaceParticipations"
            )
        finally:
            await client.aclose()
        result = []
        for entry in body.get("payload") or []:
            market = entry.get("marketplace") or {}
            participation = entry.get("participation") or {}
            result.append(
                {
                    "id": market.get("id"),
                    "country": market.get("countryCode"),
                    "name": market.get("name"),
                    "currency": market.get("defaultCurrencyCode"),
                    "store": entry.get("storeName"),
                    "participating": bool(participation.get("isParticipating")),
                }
            )
        return result
