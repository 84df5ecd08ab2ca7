"""Browsing synced records: one page at a time, searched in SQL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, or_, select

from dashboard.db import contains_pattern
from dashboard.models import RECORD_TABLES

# Kind -> (label, columns shown besides the external id)
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "product": ("Products", ("title", "sku", "status", "vendor")),
    "variant": ("Variants", ("title", "sku", "price", "inventory_quantity")),
    "inventory_level": ("Inventory", ("sku", "location_name", "available", "on_hand")),
    "order": ("Orders", ("name", "financial_status", "total_price", "currency")),
    "order_line": ("Order lines", ("order_external_id", "sku", "quantity", "price")),
    "customer": ("Customers", ("email", "first_name", "last_name", "orders_count")),
}
SEARCHABLE = ("external_id", "title", "sku", "name", "email")


def browse(
    *,
    session: Session,
    kind: str,
    integration_id: str = "",
    search: str = "",
    offset: int = 0,
    limit: int = 25,
) -> tuple[list[dict[str, str]], int]:
    table = RECORD_TABLES[kind]
    columns = VIEWS[kind][1]
    statement = select(table).where(col(table.deleted_at).is_(None))
    if integration_id:
        statement = statement.where(col(table.integration_id) == uuid.UUID(integration_id))
    if search.strip():
        pattern = contains_pattern(search)
        searchable = [getattr(table, name) for name in SEARCHABLE if hasattr(table, name)]
        statement = statement.where(
            or_(*[func.lower(c).like(pattern, escape="\\") for c in searchable])
        )
    total = int(session.exec(select(func.count()).select_from(statement.subquery())).one())
    rows = session.exec(
        statement.order_by(col(table.synced_at).desc(), col(table.id)).offset(offset).limit(limit)
    ).all()
    return [
        {
            "id": str(row.id),
            "external_id": row.external_id,
            **{
                f"c{i}": "" if getattr(row, name) is None else str(getattr(row, name))
                for i, name in enumerate(columns)
            },
            "synced_at": row.synced_at.isoformat(),
        }
        for row in rows
    ], total


def raw_json(*, session: Session, kind: str, record_id: str) -> str:
    table: Any = RECORD_TABLES[kind]
    row = session.execute(sa.select(table.raw).where(table.id == uuid.UUID(record_id))).first()
    return json.dumps(row[0], indent=2) if row else ""
