"""Shopify's mandatory privacy topics, applied once ``shopify_webhooks`` has bound the event
to its shop's integration: customers/data_request is recorded, customers/redact and
shop/redact erase what they name.

An erased record is not deleted outright: the Hub API's consumers hold copies of it and must
learn to erase them too. It becomes a tombstone of the change feed instead: marked deleted,
``raw`` emptied and every field of the record emptied, so that only its ids (the platform's
id, and those of the records it belongs to) and the hub's timestamps remain, and numbered
by the change feed like any other change.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlmodel import Session, col

from dashboard.models import RECORD_TABLES, Customer, Integration, Order, WebhookEvent
from dashboard.services.audit import record_audit
from dashboard.services.change_feed import PENDING, field_names, note_change
from dashboard.services.personal_data import COLUMNS as PERSONAL_COLUMNS


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def erased_values(kind: str, now: datetime) -> dict[str, Any]:
    """What an erased record of ``kind`` keeps: deleted (since ``now``, unless it already
    was), no ``raw``, every field empty (None, or the model's default where the column must
    have a value), but the ids that say which record it was; numbered at commit."""
    model = RECORD_TABLES[kind]
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "raw": {},
        "deleted_at": sa.func.coalesce(table.c.deleted_at, now),
        "synced_at": now,
        **PENDING,
    }
    for name in field_names(kind):
        if table.c[name].nullable:
            values[name] = None
        elif (default := model.model_fields[name].default) is not PydanticUndefined:
            values[name] = default  # a title, a quantity: emptied
        # else an id of the record it belongs to (a variant's product): kept, not personal
    return values


def erase_records(
    session: Session, integration_id: uuid.UUID, kind: str, *where: sa.ColumnElement[bool]
) -> int:
    """Turn the integration's records of ``kind`` matching ``where`` into tombstones of the
    change feed (``erased_values``); the number of records."""
    table: sa.Table = RECORD_TABLES[kind].__table__  # type: ignore[attr-defined]
    erased = _rows(
        session.execute(
            sa.update(table)
            .where(table.c.integration_id == integration_id, *where)
            .values(**erased_values(kind, datetime.now(UTC)))
        )
    )
    if erased:
        note_change(session, integration_id, kind)  # API consumers erase their copies too
    return erased


def redacted_request(payload: dict[str, Any]) -> dict[str, Any]:
    """What the hub keeps of a customers/redact request once applied: the ids it named."""
    customer = payload.get("customer") or {}
    return {
        "shop_id": payload.get("shop_id"),
        "shop_domain": payload.get("shop_domain"),
        "customer": {"id": customer.get("id")} if isinstance(customer, dict) else {},
        "orders_to_redact": payload.get("orders_to_redact") or [],
    }


def apply_compliance(session: Session, event: WebhookEvent, integration_id: uuid.UUID) -> None:
    """Mandatory GDPR topics: record the request; erase what Shopify asks us to forget.

    customers/redact erases the customer (a tombstone of the change feed) and the personal
    data on their orders; shop/redact (48 hours after an uninstall) erases every record of
    the shop (tombstones).
    customers/data_request is recorded for the merchant to answer from the hub's tables.
    ``integration_id`` is the shop's integration, as ``bind`` established.
    """
    payload = event.payload
    integration = session.get(Integration, integration_id)
    customer_id = (payload.get("customer") or {}).get("id")
    customer_gid = f"gid://shopify/Customer/{customer_id}" if customer_id else None
    listed = payload.get("orders_to_redact") or payload.get("orders_requested") or []
    order_gids = [f"gid://shopify/Order/{number}" for number in listed if str(number).isdigit()]
    redacted = 0
    if integration is not None and event.topic == "customers/redact":
        if customer_gid:
            redacted += erase_records(
                session, integration.id, "customer", col(Customer.external_id) == customer_gid
            )
        # The orders Shopify names, and any other order of that customer we hold.
        matches: list[sa.ColumnElement[bool]] = (
            [col(Order.external_id).in_(order_gids)] if order_gids else []
        )
        if customer_gid:
            matches.append(col(Order.customer_external_id) == customer_gid)
        if matches:
            redacted += _rows(
                session.execute(
                    sa.update(Order)
                    .where(col(Order.integration_id) == integration.id, sa.or_(*matches))
                    .values(email=None, raw={}, **dict.fromkeys(PERSONAL_COLUMNS), **PENDING)
                )
            )
            note_change(session, integration.id, "order")  # API consumers erase it too
    if integration is not None and event.topic == "shop/redact":
        for kind in RECORD_TABLES:
            redacted += erase_records(session, integration.id, kind)
    if event.topic == "customers/redact":
        # The request names the person it asks us to forget (email, phone): keep only ids.
        session.execute(
            sa.update(WebhookEvent)
            .where(col(WebhookEvent.id) == event.id)
            .values(payload=redacted_request(payload))
        )
    record_audit(
        session=session,
        actor="shopify",
        action=f"compliance.{event.topic}",
        target=event.shop or "",
        context={
            "redacted_rows": redacted,
            "webhook_id": event.webhook_id,
            "customer_id": customer_gid,
            "orders": len(order_gids),
            "data_request_id": (payload.get("data_request") or {}).get("id"),
        },
    )
