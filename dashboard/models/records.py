"""Normalized records: one table per record kind, sharing ``RecordColumns``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts


class RecordColumns(SQLModel):
    """Columns every synced record has; ``raw`` keeps the platform's JSON as received."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # No index of its own: the unique (integration_id, external_id) and the
    # (integration_id, synced_at) index of ``_record_table_args`` both lead with it.
    integration_id: uuid.UUID = Field(foreign_key="integrations.id", ondelete="CASCADE")
    external_id: str = Field(max_length=255)
    raw: dict[str, Any] = json_field()
    remote_updated_at: datetime | None = ts()
    deleted_at: datetime | None = ts()
    first_synced_at: datetime = ts(nullable=False, default_now=True)
    synced_at: datetime = ts(nullable=False, default_now=True)
    # The API's change feed: NULL while the writing transaction is open, numbered per
    # integration just before it commits (dashboard/services/change_feed.py).
    change_seq: int | None = Field(default=None, sa_type=sa.BigInteger)


def _record_table_args(table: str) -> tuple[sa.UniqueConstraint | sa.Index, ...]:
    """One row per platform record, and the Records page's order: newest stored first, of
    every integration or of one, and "changed since the list was read" read off a range."""
    return (
        sa.UniqueConstraint("integration_id", "external_id", name=f"uq_{table}_external"),
        sa.Index(f"ix_{table}_synced_at", "synced_at"),
        sa.Index(f"ix_{table}_integration_synced", "integration_id", "synced_at"),
        sa.Index(f"ix_{table}_change_seq", "integration_id", "change_seq"),
        # The hourly purge of old tombstones reads only deleted rows.
        sa.Index(
            f"ix_{table}_tombstones",
            "deleted_at",
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
        ),
    )


class Product(RecordColumns, table=True):
    __tablename__ = "products"
    __table_args__ = _record_table_args("products")

    title: str = Field(default="", max_length=512)
    handle: str | None = Field(default=None, max_length=255)
    vendor: str | None = Field(default=None, max_length=255)
    product_type: str | None = Field(default=None, max_length=255)
    status: str | None = Field(default=None, max_length=32)
    sku: str | None = Field(default=None, max_length=255, index=True)
    asin: str | None = Field(default=None, max_length=32)
    price: str | None = Field(default=None, max_length=32, description="decimal as text")
    currency: str | None = Field(default=None, max_length=3)
    quantity: int | None = None
    remote_created_at: datetime | None = ts()


class Variant(RecordColumns, table=True):
    __tablename__ = "variants"
    __table_args__ = _record_table_args("variants")

    product_external_id: str = Field(max_length=255, index=True)
    title: str = Field(default="", max_length=512)
    sku: str | None = Field(default=None, max_length=255, index=True)
    barcode: str | None = Field(default=None, max_length=255)
    price: str | None = Field(default=None, max_length=32)
    inventory_item_id: str | None = Field(default=None, max_length=255)
    inventory_quantity: int | None = None


class InventoryLevel(RecordColumns, table=True):
    """Stock of one item at one place: a Shopify location or an Amazon FBA pool."""

    __tablename__ = "inventory_levels"
    __table_args__ = _record_table_args("inventory_levels")

    inventory_item_id: str = Field(max_length=255, index=True)
    location_id: str = Field(max_length=255)
    location_name: str | None = Field(default=None, max_length=255)
    sku: str | None = Field(default=None, max_length=255, index=True)
    available: int | None = None
    on_hand: int | None = None
    reserved: int | None = None
    inbound: int | None = None


class Order(RecordColumns, table=True):
    __tablename__ = "orders"
    __table_args__ = _record_table_args("orders")

    name: str | None = Field(default=None, max_length=64, description="#1001 or 123-456-789")
    financial_status: str | None = Field(default=None, max_length=32)
    fulfillment_status: str | None = Field(default=None, max_length=32)
    currency: str | None = Field(default=None, max_length=3)
    total_price: str | None = Field(default=None, max_length=32)
    customer_external_id: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    marketplace_id: str | None = Field(default=None, max_length=32)
    placed_at: datetime | None = ts(index=True)
    cancelled_at: datetime | None = ts()
    # Buyer and recipient (name, email, delivery address) when HUB_AMAZON_BUYER_DATA=encrypted:
    # sealed by the vault (services/personal_data.py), never in plain text nor in ``raw``.
    personal_key_id: str | None = Field(default=None, max_length=64)
    personal_data: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class OrderLine(RecordColumns, table=True):
    __tablename__ = "order_lines"
    __table_args__ = _record_table_args("order_lines")

    order_external_id: str = Field(max_length=255, index=True)
    sku: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=512)
    quantity: int = 0
    price: str | None = Field(default=None, max_length=32)
    product_external_id: str | None = Field(default=None, max_length=255)
    variant_external_id: str | None = Field(default=None, max_length=255)


class Customer(RecordColumns, table=True):
    __tablename__ = "customers"
    __table_args__ = _record_table_args("customers")

    email: str | None = Field(default=None, max_length=320, index=True)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    state: str | None = Field(default=None, max_length=32)
    orders_count: int | None = None
    total_spent: str | None = Field(default=None, max_length=32)
    remote_created_at: datetime | None = ts()


# Record kind (connectors.base.RecordKind value) -> table. The one mapping the sync engine
# and the records page use.
RECORD_TABLES: dict[str, type[RecordColumns]] = {
    "product": Product,
    "variant": Variant,
    "inventory_level": InventoryLevel,
    "order": Order,
    "order_line": OrderLine,
    "customer": Customer,
}
