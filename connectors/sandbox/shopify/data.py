"""A sandbox shop's data: generated lazily from (seed, shop, index), plus an overlay of changes.

Record i of a kind is a pure function of its index, so a shop of 100,000 products costs
nothing until it is read. Changes (updates, deletes, new orders, variants and line items
removed) live in small overlays.
Base records are ordered by ``updated_at`` = epoch + i * step; changed ones come after.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox.core import checksum

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
KINDS = ("product", "order", "customer")
STEP = {"product": 37, "order": 53, "customer": 71}  # seconds between base updated_at values
ID_BASE = {
    "product": 1_000_000,
    "variant": 2_000_000,
    "inventory_item": 3_000_000,
    "order": 5_000_000,
    "line_item": 6_000_000,
    "customer": 7_000_000,
    "location": 8_000_000,
}
PLANS = {  # plan -> (display name, restore rate per second)
    "standard": ("Basic", 100.0),
    "advanced": ("Advanced", 200.0),
    "plus": ("Shopify Plus", 1000.0),
    "enterprise": ("Commerce Components", 2000.0),
}
WORDS = (
    "Alpine",
    "Canyon",
    "Harbor",
    "Summit",
    "Meadow",
    "River",
    "Cedar",
    "Aurora",
    "Delta",
    "Ember",
    "Fjord",
    "Grove",
    "Juniper",
    "Lumen",
    "Nimbus",
    "Orchid",
    "Prairie",
    "Quartz",
)
ITEMS = (
    "Jacket",
    "Tent",
    "Mug",
    "Backpack",
    "Kettle",
    "Lantern",
    "Boots",
    "Skillet",
    "Scarf",
    "Bottle",
    "Knife",
    "Blanket",
    "Stove",
    "Hat",
    "Gloves",
    "Pan",
    "Chair",
    "Rope",
)


def gid(kind: str, number: int) -> str:
    names = {
        "product": "Product",
        "variant": "ProductVariant",
        "inventory_item": "InventoryItem",
        "order": "Order",
        "line_item": "LineItem",
        "customer": "Customer",
        "location": "Location",
    }
    return f"gid://shopify/{names[kind]}/{number}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ShopData:
    shop: str
    seed: int
    products: int = 50
    variants_per_product: int = 2
    orders: int = 50
    customers: int = 20
    locations: int = 2
    plan: str = "standard"
    lines_per_order: int = 0  # 0: each order has 1 to 3 lines; n: every order has n
    # overlays
    updated: dict[tuple[str, int], datetime] = field(default_factory=dict)
    deleted: dict[tuple[str, int], datetime] = field(default_factory=dict)
    extra_orders: int = 0
    version: dict[tuple[str, int], int] = field(default_factory=dict)
    removed_variants: set[int] = field(default_factory=set)  # variant indices
    removed_lines: set[tuple[int, int]] = field(default_factory=set)  # (order, line)

    def parameters(self) -> dict[str, Any]:
        """What the shop was created with: with the seed, all it takes to grow it again."""
        return {
            "products": self.products,
            "variants_per_product": self.variants_per_product,
            "orders": self.orders,
            "customers": self.customers,
            "locations": self.locations,
            "plan": self.plan,
            "lines_per_order": self.lines_per_order,
        }

    def _rand(self, *parts: object) -> int:
        digest = hashlib.blake2b(repr((self.seed, self.shop, *parts)).encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big")

    # --- counting and ordering -------------------------------------------------------------

    def total(self, kind: str) -> int:
        if kind == "order":
            return self.orders + self.extra_orders
        return {"product": self.products, "customer": self.customers}[kind]

    def base_time(self, kind: str, index: int) -> datetime:
        if kind == "order" and index >= self.orders:
            return self.updated.get((kind, index), EPOCH)
        return EPOCH + timedelta(seconds=index * STEP[kind])

    def updated_at(self, kind: str, index: int) -> datetime:
        return self.updated.get((kind, index)) or self.base_time(kind, index)

    def created_at(self, kind: str, index: int) -> datetime:
        return self.base_time(kind, index) - timedelta(days=30)

    def is_live(self, kind: str, index: int) -> bool:
        return 0 <= index < self.total(kind) and (kind, index) not in self.deleted

    def ordered(self, kind: str, after: tuple[datetime, int] | None = None) -> Iterator[int]:
        """Live indices by (updated_at, index), strictly after ``after``."""
        changed = sorted(
            (self.updated[key], key[1])
            for key in self.updated
            if key[0] == kind and self.is_live(kind, key[1])
        )
        base_count = self.orders if kind == "order" else self.total(kind)
        start = 0
        if after is not None:
            seconds = (after[0] - EPOCH).total_seconds()
            start = max(0, int(seconds // STEP[kind]) - 1)
        for index in range(start, base_count):
            if (kind, index) in self.updated or (kind, index) in self.deleted:
                continue
            if after is not None and (self.base_time(kind, index), index) <= after:
                continue
            yield index
        for moment, index in changed:
            if after is not None and (moment, index) <= after:
                continue
            yield index

    # --- records as Admin API nodes (field names of the schema) ------------------------------

    def product_title(self, index: int) -> str:
        r = self._rand("title", index)
        base = f"{WORDS[r % len(WORDS)]} {ITEMS[(r >> 8) % len(ITEMS)]}"
        version = self.version.get(("product", index), 0)
        return base if not version else f"{base} v{version + 1}"

    def variant_ids(self, product: int) -> list[int]:
        """The product's variants (indices), without those removed from it."""
        first = product * self.variants_per_product
        variants = range(first, first + self.variants_per_product)
        return [v for v in variants if v not in self.removed_variants]

    def variant_price(self, variant: int) -> str:
        return f"{5 + self._rand('price', variant) % 200}.{self._rand('cents', variant) % 100:02d}"

    def product_node(self, index: int) -> dict[str, Any]:
        number = ID_BASE["product"] + index
        updated = self.updated_at("product", index)
        title = self.product_title(index)
        return {
            "__typename": "Product",
            "id": gid("product", number),
            "legacyResourceId": str(number),
            "title": title,
            "handle": title.lower().replace(" ", "-") + f"-{index}",
            "vendor": WORDS[self._rand("vendor", index) % len(WORDS)] + " Co.",
            "productType": ITEMS[self._rand("type", index) % len(ITEMS)],
            "status": "ACTIVE" if self._rand("status", index) % 10 else "DRAFT",
            "createdAt": iso(self.created_at("product", index)),
            "updatedAt": iso(updated),
            "totalInventory": sum(
                self.quantity(v, loc)
                for v in self.variant_ids(index)
                for loc in range(self.locations)
            ),
            "tags": [],
            "_index": index,
        }

    def variant_node(self, product: int, variant: int) -> dict[str, Any]:
        number = ID_BASE["variant"] + variant
        title = (
            ("Small", "Medium", "Large", "XL", "XXL")[variant % 5]
            if self.variants_per_product > 1
            else "Default Title"
        )
        quantity = sum(self.quantity(variant, loc) for loc in range(self.locations))
        return {
            "__typename": "ProductVariant",
            "id": gid("variant", number),
            "legacyResourceId": str(number),
            "title": title,
            # Shopify's displayName is the product's title and the variant's, joined by " - ".
            "displayName": f"{self.product_title(product)} - {title}",
            "position": variant % max(1, self.variants_per_product) + 1,
            "inventoryPolicy": "DENY",  # Shopify's default: no sale without stock
            "availableForSale": quantity > 0,
            "sellableOnlineQuantity": quantity,
            "requiresComponents": False,
            "taxable": True,
            "compareAtPrice": None,
            "taxCode": None,
            "image": None,
            "sku": f"SKU-{product:06d}-{variant % self.variants_per_product}",
            "barcode": f"{400000000000 + variant}",
            "price": self.variant_price(variant),
            "inventoryQuantity": quantity,
            "createdAt": iso(self.created_at("product", product)),
            "updatedAt": iso(self.updated_at("product", product)),
            "_product": product,
            "_variant": variant,
        }

    def quantity(self, variant: int, location: int) -> int:
        version = self.version.get(("product", variant // max(1, self.variants_per_product)), 0)
        return (self._rand("qty", variant, location) + version * 7) % 120

    def location_node(self, location: int) -> dict[str, Any]:
        return {
            "__typename": "Location",
            "id": gid("location", ID_BASE["location"] + location),
            "legacyResourceId": str(ID_BASE["location"] + location),
            "name": ("Main warehouse", "Retail store", "Overflow depot", "Pop-up")[location % 4]
            + (f" {location // 4 + 1}" if location >= 4 else ""),
            "isActive": True,
        }

    def inventory_item_number(self, variant: int) -> int:
        return ID_BASE["inventory_item"] + variant

    def inventory_level_id(self, variant: int, location: int) -> str:
        return (
            f"gid://shopify/InventoryLevel/{ID_BASE['location'] + location}"
            f"?inventory_item_id={self.inventory_item_number(variant)}"
        )

    def line_count(self, order: int) -> int:
        """Line items the order was placed with (``lines`` leaves out those removed since)."""
        return self.lines_per_order or 1 + self._rand("lines", order) % 3

    def lines(self, order: int) -> list[int]:
        """The order's line items (positions), without those removed by an edit."""
        return [k for k in range(self.line_count(order)) if (order, k) not in self.removed_lines]

    def line_item_number(self, order: int, line: int) -> int:
        return ID_BASE["line_item"] + order * max(10, self.lines_per_order) + line

    def order_node(self, index: int) -> dict[str, Any]:
        number = ID_BASE["order"] + index
        customer = self.customer_of_order(index)
        cancelled = self._rand("cancel", index) % 20 == 0
        total = sum(
            int(float(self.line_price(index, k)) * 100) * self.line_quantity(index, k)
            for k in self.lines(index)
        )
        return {
            "__typename": "Order",
            "id": gid("order", number),
            "legacyResourceId": str(number),
            "name": f"#{1001 + index}",
            # An erased (redacted) customer leaves their orders without personal data.
            "email": (
                None
                if ("customer", customer) in self.deleted
                else f"customer{customer}@example.com"
            ),
            "createdAt": iso(self.created_at("order", index)),
            "processedAt": iso(self.created_at("order", index)),
            "updatedAt": iso(self.updated_at("order", index)),
            "cancelledAt": iso(self.updated_at("order", index)) if cancelled else None,
            "currencyCode": "USD",
            "displayFinancialStatus": ("PAID", "PENDING", "REFUNDED", "PARTIALLY_PAID")[
                self._rand("fin", index) % 4
            ],
            "displayFulfillmentStatus": ("FULFILLED", "UNFULFILLED", "PARTIALLY_FULFILLED")[
                self._rand("ful", index) % 3
            ],
            "totalPriceSet": _money(total),
            "_index": index,
            "_customer": customer,
        }

    def line_price(self, order: int, line: int) -> str:
        return self.variant_price(self._line_variant(order, line))

    def line_quantity(self, order: int, line: int) -> int:
        return 1 + self._rand("lq", order, line) % 4

    def _line_variant(self, order: int, line: int) -> int:
        variants = max(1, self.products * self.variants_per_product)
        return self._rand("lv", order, line) % variants

    def line_node(self, order: int, line: int) -> dict[str, Any]:
        variant = self._line_variant(order, line)
        product = variant // max(1, self.variants_per_product)
        number = self.line_item_number(order, line)
        return {
            "__typename": "LineItem",
            "id": gid("line_item", number),
            "sku": f"SKU-{product:06d}-{variant % self.variants_per_product}",
            "title": self.product_title(product),
            "quantity": self.line_quantity(order, line),
            "originalUnitPriceSet": _money(int(float(self.line_price(order, line)) * 100)),
            "_product": product,
            "_variant": variant,
        }

    def customer_node(self, index: int) -> dict[str, Any]:
        number = ID_BASE["customer"] + index
        first = WORDS[self._rand("first", index) % len(WORDS)]
        last = ITEMS[self._rand("last", index) % len(ITEMS)]
        return {
            "__typename": "Customer",
            "id": gid("customer", number),
            "legacyResourceId": str(number),
            "firstName": first,
            "lastName": last + "son",
            "email": f"customer{index}@example.com",
            "defaultEmailAddress": {"emailAddress": f"customer{index}@example.com"},
            "state": "ENABLED",
            "numberOfOrders": str(self._rand("orders", index) % 12),
            "amountSpent": {
                "amount": f"{self._rand('spent', index) % 5000}.00",
                "currencyCode": "USD",
            },
            "createdAt": iso(self.created_at("customer", index)),
            "updatedAt": iso(self.updated_at("customer", index)),
        }

    # --- changes -------------------------------------------------------------------------

    def snapshot(self) -> ShopData:
        """A copy frozen at this instant: later changes do not reach it (bulk exports)."""
        return dataclasses.replace(
            self,
            updated=dict(self.updated),
            deleted=dict(self.deleted),
            version=dict(self.version),
            removed_variants=set(self.removed_variants),
            removed_lines=set(self.removed_lines),
        )

    def touch(self, kind: str, index: int, moment: datetime) -> None:
        self.updated[(kind, index)] = moment
        self.version[(kind, index)] = self.version.get((kind, index), 0) + 1

    def delete(self, kind: str, index: int, moment: datetime) -> None:
        self.deleted[(kind, index)] = moment

    def remove_variant(self, product: int, variant: int, moment: datetime) -> None:
        """The variant (and its inventory item) is deleted; the product stays, updated."""
        self.removed_variants.add(variant)
        self.touch("product", product, moment)

    def remove_line(self, order: int, line: int, moment: datetime) -> None:
        """An order edit removes the line item; the order stays, updated."""
        self.removed_lines.add((order, line))
        self.touch("order", order, moment)

    @property
    def shop_id(self) -> int:
        """The shop's numeric id: stable for a seed and domain (``hash()`` is per process)."""
        return 10_000_000 + self._rand("shop") % 90_000_000

    def customer_of_order(self, order: int) -> int:
        return self._rand("customer", order) % max(1, self.customers)

    def customers_with_orders(self) -> set[int]:
        return {
            self.customer_of_order(i)
            for i in range(self.total("order"))
            if self.is_live("order", i)
        }

    def orders_of_customer(self, customer: int) -> list[int]:
        """Live orders placed by ``customer`` (index), the ones a privacy request names."""
        return [
            i
            for i in range(self.total("order"))
            if self.customer_of_order(i) == customer and self.is_live("order", i)
        ]

    def add_order(self, moment: datetime) -> int:
        index = self.orders + self.extra_orders
        self.extra_orders += 1
        self.updated[("order", index)] = moment
        return index

    # --- ground truth --------------------------------------------------------------------

    def truth(self) -> dict[str, dict[str, object]]:
        products = [i for i in range(self.products) if self.is_live("product", i)]
        orders = [i for i in range(self.total("order")) if self.is_live("order", i)]
        customers = [i for i in range(self.customers) if self.is_live("customer", i)]
        streams: dict[str, list[str]] = {
            "products": [gid("product", ID_BASE["product"] + i) for i in products],
            "variants": [
                gid("variant", ID_BASE["variant"] + v)
                for i in products
                for v in self.variant_ids(i)
            ],
            "inventory_levels": [
                self.inventory_level_id(v, loc)
                for i in products
                for v in self.variant_ids(i)
                for loc in range(self.locations)
            ],
            "orders": [gid("order", ID_BASE["order"] + i) for i in orders],
            "order_lines": [
                gid("line_item", self.line_item_number(i, k)) for i in orders for k in self.lines(i)
            ],
            "customers": [gid("customer", ID_BASE["customer"] + i) for i in customers],
        }
        return {
            name: {"count": len(ids), "checksum": checksum(ids)} for name, ids in streams.items()
        }


def _money(cents: int) -> dict[str, Any]:
    amount = {"amount": f"{cents // 100}.{cents % 100:02d}", "currencyCode": "USD"}
    return {"shopMoney": amount, "presentmentMoney": amount}
