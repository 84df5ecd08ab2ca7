"""A sandbox seller's data: deterministic from (seed, seller id), generated lazily.

Record *i* of a stream is a pure function of the seed and *i*, so a seller of a million
listings costs nothing until a page or a report asks for it. Changes over time (updated and
new orders, listing changes) are kept as small overlays on top.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.amazon.regions import MARKETPLACES, REGION_MARKETPLACES

ORDER_SPAN = timedelta(days=60)  # orders are spread over the 60 days before the seller exists
LISTING_HEADER = (
    "item-name", "item-description", "listing-id", "seller-sku", "price", "quantity",
    "open-date", "image-url", "item-is-marketplace", "product-id-type", "zshop-shipping-fee",
    "item-note", "item-condition", "zshop-category1", "zshop-browse-path",
    "zshop-storefront-feature", "asin1", "asin2", "asin3", "will-ship-internationally",
    "expedited-shipping", "zshop-boldface", "product-id", "bid-for-featured-placement",
    "add-delete", "pending-quantity", "fulfillment-channel", "merchant-shipping-group", "status",
)  # fmt: skip
# Names with characters outside ASCII: the report's Cp1252 (NA/EU) or Shift_JIS (JP) must
# carry them, which is exactly what breaks naive UTF-8 readers.
_WORDS = ("Café", "Crème", "Über", "Señor", "Façade", "Naïve", "Smörgås", "Jalapeño", "Déjà")
_JP_WORDS = ("抹茶", "急須", "湯呑み", "和紙", "風呂敷", "手ぬぐい")
_NOUNS = ("Mug", "Kettle", "Lamp", "Blanket", "Notebook", "Bottle", "Backpack", "Candle")
_STATUSES_2026 = ("SHIPPED", "SHIPPED", "SHIPPED", "UNSHIPPED", "PENDING", "CANCELLED")
_STATUS_V0 = {
    "SHIPPED": "Shipped",
    "UNSHIPPED": "Unshipped",
    "PENDING": "Pending",
    "CANCELLED": "Canceled",
    "PARTIALLY_SHIPPED": "PartiallyShipped",
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digits(seed: str, count: int) -> str:
    number = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return str(number)[-count:].rjust(count, "0")


@dataclass
class SellerData:
    seller_id: str
    region: str
    seed: int
    created: datetime
    marketplaces: tuple[str, ...] = ()
    orders: int = 200
    listings: int = 300
    fba_items: int = 100
    store_name: str = ""
    initial_orders: int = 0
    added_orders: list[datetime] = field(default_factory=list)
    order_updates: dict[int, datetime] = field(default_factory=dict)
    listing_updates: dict[int, datetime] = field(default_factory=dict)
    deleted_listings: set[int] = field(default_factory=set)
    _order_index: list[tuple[datetime, str, int]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.marketplaces:
            self.marketplaces = REGION_MARKETPLACES[self.region][:2]
        self.fba_items = min(self.fba_items, self.listings)
        self.initial_orders = self.orders
        self.store_name = self.store_name or f"Sandbox Seller {self.seller_id[-4:]}"

    # --- listings -----------------------------------------------------------------------

    def listing_marketplace(self, index: int) -> str:
        return self.marketplaces[index % len(self.marketplaces)]

    def listing(self, index: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:{self.seller_id}:listing:{index}")
        marketplace = self.listing_marketplace(index)
        words = _JP_WORDS if MARKETPLACES[marketplace].country == "JP" else _WORDS
        fba = index < self.fba_items
        opened = self.created - timedelta(days=rng.randint(30, 900))
        return {
            "sku": f"SKU-{index:07d}",
            "asin": "B0" + _digits(f"{self.seller_id}:asin:{index}", 8),
            "title": f"{rng.choice(words)} {rng.choice(_NOUNS)} {index}",
            "price": f"{rng.randint(300, 15000) / 100:.2f}",
            "quantity": 0 if fba else rng.randint(0, 250),
            "opened": opened,
            "marketplace": marketplace,
            "fulfillment_channel": f"AMAZON_{self.region.upper()}" if fba else "DEFAULT",
            "status": "Active" if rng.random() > 0.1 else "Inactive",
            "listing_id": _digits(f"{self.seller_id}:listing-id:{index}", 10) + "A",
            "updated": self.listing_updates.get(index, opened),
        }

    def listing_row(self, index: int) -> list[str]:
        item = self.listing(index)
        values = {
            "item-name": item["title"],
            "listing-id": item["listing_id"],
            "seller-sku": item["sku"],
            "price": item["price"],
            "quantity": "" if item["fulfillment_channel"] != "DEFAULT" else str(item["quantity"]),
            "open-date": item["opened"].strftime("%Y-%m-%d %H:%M:%S PST"),
            "item-is-marketplace": "y",
            "product-id-type": "1",
            "item-condition": "11",
            "asin1": item["asin"],
            "will-ship-internationally": "1",
            "product-id": item["asin"],
            "fulfillment-channel": item["fulfillment_channel"],
            "merchant-shipping-group": "Migrated Template",
            "status": item["status"],
        }
        return [values.get(column, "") for column in LISTING_HEADER]

    def listings_in(self, marketplace: str) -> range | list[int]:
        count = len(self.marketplaces)
        position = self.marketplaces.index(marketplace) if marketplace in self.marketplaces else -1
        if position < 0:
            return []
        every = range(position, self.listings, count)
        if not self.deleted_listings:
            return every
        return [i for i in every if i not in self.deleted_listings]

    def listing_exists(self, index: int) -> bool:
        return 0 <= index < self.listings and index not in self.deleted_listings

    # --- FBA inventory ------------------------------------------------------------------

    def inventory_summary(self, index: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:{self.seller_id}:fba:{index}")
        listing = self.listing(index)
        fulfillable = rng.randint(0, 400)
        reserved = rng.randint(0, 20)
        inbound = rng.randint(0, 60)
        unfulfillable = rng.randint(0, 5)
        updated = self.listing_updates.get(
            index, self.created - timedelta(hours=rng.randint(1, 900))
        )
        return {
            "asin": listing["asin"],
            "fnSku": "X00" + _digits(f"{self.seller_id}:fnsku:{index}", 7),
            "sellerSku": listing["sku"],
            "condition": "NewItem",
            "inventoryDetails": {
                "fulfillableQuantity": fulfillable,
                "inboundWorkingQuantity": inbound,
                "inboundShippedQuantity": 0,
                "inboundReceivingQuantity": 0,
                "reservedQuantity": {
                    "totalReservedQuantity": reserved,
                    "pendingCustomerOrderQuantity": reserved,
                    "pendingTransshipmentQuantity": 0,
                    "fcProcessingQuantity": 0,
                },
                "researchingQuantity": {"totalResearchingQuantity": 0},
                "unfulfillableQuantity": {"totalUnfulfillableQuantity": unfulfillable},
            },
            "lastUpdatedTime": iso(updated),
            "productName": listing["title"],
            "totalQuantity": fulfillable + reserved + inbound + unfulfillable,
        }

    def fba_in(self, marketplace: str) -> list[int]:
        return [i for i in self.listings_in(marketplace) if i < self.fba_items]

    # --- orders -------------------------------------------------------------------------

    def order_id(self, index: int) -> str:
        digits = _digits(f"{self.seed}:{self.seller_id}:order:{index}", 17)
        return f"{digits[:3]}-{digits[3:10]}-{digits[10:]}"

    def order_created(self, index: int) -> datetime:
        if index >= self.initial_orders:
            return self.added_orders[index - self.initial_orders]
        return self.created - ORDER_SPAN * (self.initial_orders - index) / self.initial_orders

    def order_updated(self, index: int) -> datetime:
        if index in self.order_updates:
            return self.order_updates[index]
        if index >= self.initial_orders:
            return self.order_created(index)
        rng = random.Random(f"{self.seed}:{self.seller_id}:updated:{index}")
        updated = self.order_created(index) + timedelta(minutes=rng.randint(0, 600))
        return min(updated, self.created - timedelta(minutes=5))  # history is in the past

    def order(self, index: int) -> dict[str, Any]:
        """The order in a platform-neutral shape both Orders API versions render from."""
        rng = random.Random(f"{self.seed}:{self.seller_id}:order-body:{index}")
        marketplace = self.marketplaces[index % len(self.marketplaces)]
        status = rng.choice(_STATUSES_2026)
        if index in self.order_updates and status in ("PENDING", "UNSHIPPED"):
            status = "SHIPPED"
        items = []
        for position in range(rng.randint(1, 3)):
            listing_index = rng.randrange(max(self.listings, 1))
            listing = self.listing(listing_index)
            items.append(
                {
                    "orderItemId": _digits(f"{self.order_id(index)}:{position}", 14),
                    "sku": listing["sku"],
                    "asin": listing["asin"],
                    "title": listing["title"],
                    "quantity": rng.randint(1, 4),
                    "price": listing["price"],
                }
            )
        total = sum(float(item["price"]) * item["quantity"] for item in items)
        return {
            "orderId": self.order_id(index),
            "created": self.order_created(index),
            "updated": self.order_updated(index),
            "marketplace": marketplace,
            "status": status,
            "fulfilledBy": "AMAZON" if rng.random() < 0.4 else "MERCHANT",
            "currency": MARKETPLACES[marketplace].currency,
            "total": f"{total:.2f}",
            "items": items,
        }

    def add_order(self, now: datetime) -> int:
        self.added_orders.append(now)
        self.orders += 1
        self._order_index = None
        return self.orders - 1

    def touch_order(self, index: int, now: datetime) -> None:
        self.order_updates[index] = now
        self._order_index = None

    def orders_by_update(self) -> list[tuple[datetime, str, int]]:
        """(lastUpdatedTime, orderId, index) sorted: the order searchOrders pages in."""
        if self._order_index is None:
            self._order_index = sorted(
                (self.order_updated(i), self.order_id(i), i) for i in range(self.orders)
            )
        return self._order_index

    def orders_between(
        self, after: datetime, before: datetime, start_key: tuple[str, str] | None = None
    ) -> list[int]:
        index = self.orders_by_update()
        low = bisect.bisect_left(index, (after, "", -1))
        high = bisect.bisect_left(index, (before, "", -1))
        chosen = index[low:high]
        if start_key is not None:
            moment = datetime.fromisoformat(start_key[0])
            skip = bisect.bisect_right(chosen, (moment, start_key[1], 1 << 62))
            chosen = chosen[skip:]
        return [i for _, _, i in chosen]

    def orders_created_between(self, after: datetime, before: datetime) -> list[int]:
        return [i for i in range(self.orders) if after <= self.order_created(i) < before]

    # --- views ------------------------------------------------------------------------------

    def status_v0(self, status: str) -> str:
        return _STATUS_V0.get(status, "Pending")
