"""Browsing synced records: one page at a time, searched in SQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, or_, select

from dashboard.db import contains_pattern
from dashboard.models import ACTIVE_RUN_STATUSES, RECORD_TABLES, Order, SyncRun
from dashboard.services import personal_data
from dashboard.services.audit import record_audit

# Kind -> (label, columns shown besides the external id)
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "product": ("Products", ("title", "sku", "status", "vendor")),
    "variant": ("Variants", ("title", "sku", "price", "inventory_quantity")),
    "inventory_level": ("Inventory", ("sku", "location_name", "available", "on_hand")),
    "order": ("Orders", ("name", "financial_status", "total_price", "currency")),
    "order_line": ("Order lines", ("order_external_id", "sku", "quantity", "price")),
    "customer": ("Customers", ("email", "first_name", "last_name", "orders_count")),
}
# Column -> its header on the Records page.
HEADERS = {
    "title": "Title", "sku": "SKU", "status": "Status", "vendor": "Vendor", "price": "Price",
    "inventory_quantity": "Quantity", "location_name": "Location", "available": "Available",
    "on_hand": "On hand", "name": "Order", "financial_status": "Payment", "total_price": "Total",
    "currency": "Currency", "order_external_id": "Order id", "quantity": "Quantity",
    "email": "Email", "first_name": "First name", "last_name": "Last name",
    "orders_count": "Orders",
}  # fmt: skip
SEARCHABLE = ("external_id", "title", "sku", "name", "email")


def _search(table: Any, search: str) -> Any:
    """Any searchable column contains ``search`` (case-insensitive, literally)."""
    pattern = contains_pattern(search)
    searchable = [getattr(table, name) for name in SEARCHABLE if hasattr(table, name)]
    return or_(*[func.lower(c).like(pattern, escape="\\") for c in searchable])


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
        statement = statement.where(_search(table, search))
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


PERSONAL_HIDDEN = (
    "This order's buyer and shipping details are kept encrypted; managers and admins see them."
)


def personal_details(
    *, session: Session, kind: str, record_id: str, actor: str, role: str
) -> tuple[list[dict[str, str]], str]:
    """The buyer and shipping lines of one order (decrypted for the roles allowed to read
    them, each reading audited), or a note saying they exist but are not shown; ([], "")
    for a record without any."""
    if kind != "order":
        return [], ""
    row = session.get(Order, uuid.UUID(record_id))
    if row is None or not row.personal_data:
        return [], ""
    if not personal_data.may_read(role):
        return [], PERSONAL_HIDDEN
    data = personal_data.open_sealed(
        key_id=row.personal_key_id, ciphertext=row.personal_data,
        integration_id=row.integration_id, external_id=row.external_id,
    ) or {}  # fmt: skip
    record_audit(
        session=session, actor=actor, action="order.personal_data_viewed",
        target=str(row.integration_id), context={"order": row.external_id},
    )  # fmt: skip
    lines = [{"label": label, "value": value} for label, value in personal_data.summary_lines(data)]
    return lines, ""


def record_counts(*, session: Session, integration_ids: Sequence[str]) -> dict[str, int]:
    """Stored records (every kind, deleted ones left out) of each integration, in one
    statement: per table, a range of its ``integration_id`` index for each integration."""
    if not integration_ids:
        return {}
    ids = [uuid.UUID(i) for i in integration_ids]
    parts = []
    for model in RECORD_TABLES.values():
        table: sa.Table = model.__table__  # type: ignore[attr-defined]
        parts.append(
            sa.select(table.c.integration_id, sa.func.count().label("stored"))
            .where(table.c.integration_id.in_(ids), table.c.deleted_at.is_(None))
            .group_by(table.c.integration_id)
        )
    union = sa.union_all(*parts).subquery()
    rows = session.execute(
        sa.select(union.c.integration_id, sa.func.sum(union.c.stored)).group_by(
            union.c.integration_id
        )
    ).all()
    counts = dict.fromkeys(integration_ids, 0)
    counts.update({str(integration_id): int(stored) for integration_id, stored in rows})
    return counts


def changed_since(
    *,
    session: Session,
    kind: str,
    since: datetime,
    integration_id: str = "",
    search: str = "",
) -> int:
    """How many of the records ``browse`` would list were stored or updated after ``since``
    (deleted ones drop out of the list, so they count too)."""
    table = RECORD_TABLES[kind]
    statement = select(func.count()).select_from(table).where(col(table.synced_at) > since)
    if integration_id:
        statement = statement.where(col(table.integration_id) == uuid.UUID(integration_id))
    if search.strip():
        statement = statement.where(_search(table, search))
    return int(session.exec(statement).one())


def sync_activity(*, session: Session, integration_id: str = "") -> tuple[int, int, str]:
    """Moves whenever a sync (of that integration, or of any) starts, stores a batch or ends:
    its queued and running runs, what they have written, and the newest run. Read off the run
    indexes, so a live page compares it every tick and looks at the records only when it moved.
    """
    statement = select(
        func.count(),
        func.coalesce(
            func.sum(
                col(SyncRun.records_inserted)
                + col(SyncRun.records_updated)
                + col(SyncRun.records_deleted)
            ),
            0,
        ),
    ).where(col(SyncRun.status).in_(ACTIVE_RUN_STATUSES))
    newest = select(func.max(SyncRun.created_at))
    if integration_id:
        statement = statement.where(SyncRun.integration_id == uuid.UUID(integration_id))
        newest = newest.where(SyncRun.integration_id == uuid.UUID(integration_id))
    runs, written = session.exec(statement).one()
    latest = session.exec(newest).one()
    return int(runs), int(written), latest.isoformat() if latest else ""
