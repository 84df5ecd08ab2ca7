"""Browsing synced records: one page at a time, searched in SQL; one record in full; the
whole filtered list as CSV, read in batches."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, or_, select

from dashboard.db import contains_pattern
from dashboard.models import (
    ACTIVE_RUN_STATUSES,
    RECORD_TABLES,
    Integration,
    Order,
    SyncRun,
    Variant,
)
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
# A product's SKUs live on its variants: up to this many are listed, more read "n variants".
SKUS_LISTED = 3
# Fields of every record that the detail drawer leaves out: ids of our own, the raw JSON
# (shown apart) and the columns it shows under their own names.
# The raw JSON has its own pane; sealed buyer data is never shown as stored (ciphertext).
_NOT_FIELDS = {"id", "integration_id", "raw", "personal_data", "personal_key_id"}


def _search(table: Any, search: str) -> Any:
    """Any searchable column contains ``search`` (case-insensitive, literally)."""
    pattern = contains_pattern(search)
    searchable = [getattr(table, name) for name in SEARCHABLE if hasattr(table, name)]
    return or_(*[func.lower(c).like(pattern, escape="\\") for c in searchable])


def _listed(table: Any, integration_id: str, search: str, columns: Sequence[str] = ()) -> Any:
    """The live records of ``table`` the Records page lists for this filter (whole rows, or
    only ``columns``)."""
    chosen = select(*[getattr(table, name) for name in columns]) if columns else select(table)
    statement = chosen.where(col(table.deleted_at).is_(None))
    if integration_id:
        statement = statement.where(col(table.integration_id) == uuid.UUID(integration_id))
    if search.strip():
        statement = statement.where(_search(table, search))
    return statement


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _integration_names(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.exec(
        select(Integration.id, Integration.display_name).where(col(Integration.id).in_(wanted))
    ).all()
    return dict(rows)


def variant_skus(
    session: Session, products: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], list[str]]:
    """The SKUs of each (integration, product external id)'s live variants, in id order."""
    skus: dict[tuple[uuid.UUID, str], list[str]] = defaultdict(list)
    if not products:
        return skus
    wanted = set(products)
    rows = session.exec(
        select(Variant.integration_id, Variant.product_external_id, Variant.sku)
        .where(
            col(Variant.integration_id).in_({integration for integration, _ in wanted}),
            col(Variant.product_external_id).in_({product for _, product in wanted}),
            col(Variant.deleted_at).is_(None),
        )
        .order_by(col(Variant.product_external_id), col(Variant.external_id))
    ).all()
    for integration_id, product_id, sku in rows:
        if (integration_id, product_id) in wanted and sku:
            skus[(integration_id, product_id)].append(sku)
    return skus


def sku_summary(own_sku: str | None, skus: list[str]) -> str:
    """What a product row's SKU column says: its variants' SKUs, or how many variants there
    are when that is more than a cell holds; a product without variants shows its own."""
    if not skus:
        return own_sku or ""
    if len(skus) > SKUS_LISTED:
        return f"{len(skus):,} variants"
    return ", ".join(skus)


def _cells(
    kind: str, rows: Sequence[Any], skus: dict[tuple[uuid.UUID, str], list[str]]
) -> list[list[str]]:
    """The shown columns of each row, as text (a product's SKU: its variants')."""
    columns = VIEWS[kind][1]
    cells = []
    for row in rows:
        values = [_text(getattr(row, name)) for name in columns]
        if kind == "product":
            own = row.sku
            values[columns.index("sku")] = sku_summary(
                own, skus.get((row.integration_id, row.external_id), [])
            )
        cells.append(values)
    return cells


def _products_of(kind: str, rows: Sequence[Any]) -> list[tuple[uuid.UUID, str]]:
    return [(row.integration_id, row.external_id) for row in rows] if kind == "product" else []


def browse(
    *,
    session: Session,
    kind: str,
    integration_id: str = "",
    search: str = "",
    offset: int = 0,
    limit: int = 25,
) -> tuple[list[dict[str, str]], int]:
    """A page of the records the filter lists, newest stored first, and how many it lists.
    Each row names its integration; a product's SKU column lists its variants' SKUs."""
    table = RECORD_TABLES[kind]
    statement = _listed(table, integration_id, search)
    total = int(session.exec(select(func.count()).select_from(statement.subquery())).one())
    rows = session.exec(
        statement.order_by(col(table.synced_at).desc(), col(table.id)).offset(offset).limit(limit)
    ).all()
    names = _integration_names(session, {row.integration_id for row in rows})
    cells = _cells(kind, rows, variant_skus(session, _products_of(kind, rows)))
    return [
        {
            "id": str(row.id),
            "external_id": row.external_id,
            "integration": names.get(row.integration_id, ""),
            "integration_id": str(row.integration_id),
            **{f"c{i}": value for i, value in enumerate(values)},
            "synced_at": row.synced_at.isoformat(),
        }
        for row, values in zip(rows, cells, strict=True)
    ], total


def export_header(kind: str) -> list[str]:
    return ["External id", "Integration", *[HEADERS[c] for c in VIEWS[kind][1]], "Synced at"]


# Where a batch of the export ended: the last row's (synced_at, id), in the page's order.
ExportKey = tuple[datetime, uuid.UUID]


def export_batch(
    *,
    session: Session,
    kind: str,
    integration_id: str = "",
    search: str = "",
    after: ExportKey | None = None,
    limit: int = 1000,
) -> tuple[list[list[str]], ExportKey | None]:
    """The next ``limit`` records the filter lists after ``after`` (in the page's order),
    as CSV rows, and the key to continue from (None at the end). Keyset, not offset: every
    batch is a range of the synced_at index, however deep into the list."""
    table = RECORD_TABLES[kind]
    columns = VIEWS[kind][1]
    # Only what the CSV shows: never the raw JSON, which can be most of a row.
    read = ("id", "integration_id", "external_id", "synced_at", *columns)
    statement = _listed(table, integration_id, search, read)
    if after is not None:
        synced_at, last_id = after
        # "<=" first: a range of the synced_at index, which the OR alone would not give.
        statement = statement.where(
            col(table.synced_at) <= synced_at,
            or_(col(table.synced_at) < synced_at, col(table.id) > last_id),
        )
    rows = session.exec(
        statement.order_by(col(table.synced_at).desc(), col(table.id)).limit(limit)
    ).all()
    names = _integration_names(session, {row.integration_id for row in rows})
    # The CSV lists every SKU of a product, however many.
    skus = variant_skus(session, _products_of(kind, rows))
    lines = []
    for row in rows:
        values = [_text(getattr(row, name)) for name in columns]
        if kind == "product" and skus.get((row.integration_id, row.external_id)):
            values[columns.index("sku")] = " ".join(skus[(row.integration_id, row.external_id)])
        lines.append(
            [row.external_id, names.get(row.integration_id, ""), *values, _text(row.synced_at)]
        )
    end = (rows[-1].synced_at, rows[-1].id) if len(rows) == limit else None
    return lines, end


def _name_of(row: Any) -> str:
    """What a person calls the record: its title, order name, email or SKU, else its id."""
    for name in ("title", "name", "email", "sku"):
        value = getattr(row, name, None)
        if value:
            return str(value)
    return str(row.external_id)


def record_detail(*, session: Session, kind: str, record_id: str) -> dict[str, Any]:
    """One record in full, for the detail drawer: its integration, every stored field (label,
    value), a product's variants' SKUs, and its raw JSON as the platform sent it. Empty when
    there is no such record."""
    table: Any = RECORD_TABLES[kind]
    row = session.get(table, uuid.UUID(record_id))
    if row is None:
        return {}
    names = _integration_names(session, [row.integration_id])
    fields = [
        {
            "label": HEADERS.get(name, name.replace("_", " ").capitalize()),
            "value": _text(getattr(row, name)),
            # A time is shown by the browser, in the viewer's zone.
            "is_time": "yes" if isinstance(getattr(row, name), datetime) else "",
        }
        for name in type(row).model_fields  # the table's own column order
        if name not in _NOT_FIELDS
    ]
    if kind == "product":
        skus = variant_skus(session, [(row.integration_id, row.external_id)])
        listed = skus.get((row.integration_id, row.external_id), [])
        fields.append({"label": "Variant SKUs", "value": ", ".join(listed), "is_time": ""})
    return {
        "title": _name_of(row),
        "external_id": row.external_id,
        "integration": names.get(row.integration_id, ""),
        "integration_id": str(row.integration_id),
        "fields": fields,
        "raw": json.dumps(row.raw, indent=2, sort_keys=True),
    }


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


def stored_records(integration_ids: Sequence[uuid.UUID]) -> sa.CompoundSelect:
    """Rows of (``integration_id``, ``stored``): per record table, how many records (deleted
    ones left out) each integration has there, a range of the table's ``integration_id``
    index for each."""
    parts = []
    for model in RECORD_TABLES.values():
        table: sa.Table = model.__table__  # type: ignore[attr-defined]
        parts.append(
            sa.select(table.c.integration_id, sa.func.count().label("stored"))
            .where(table.c.integration_id.in_(integration_ids), table.c.deleted_at.is_(None))
            .group_by(table.c.integration_id)
        )
    return sa.union_all(*parts)


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
