"""Shopify's mandatory privacy topics, applied once ``shopify_webhooks`` has bound the event
to its shop's integration: customers/data_request is recorded, customers/redact and
shop/redact erase what they name."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from dashboard.models import RECORD_TABLES, Customer, Integration, Order, WebhookEvent
from dashboard.services.audit import record_audit


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def apply_compliance(session: Session, event: WebhookEvent, integration_id: uuid.UUID) -> None:
    """Mandatory GDPR topics: record the request; erase what Shopify asks us to forget.

    customers/redact removes the customer and the personal data on their orders;
    shop/redact (48 hours after an uninstall) removes every record of the shop.
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
            redacted += _rows(
                session.execute(
                    sa.delete(Customer).where(
                        col(Customer.integration_id) == integration.id,
                        col(Customer.external_id) == customer_gid,
                    )
                )
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
                    .values(email=None, raw={})
                )
            )
    if integration is not None and event.topic == "shop/redact":
        for table in RECORD_TABLES.values():
            redacted += _rows(
                session.execute(sa.delete(table).where(col(table.integration_id) == integration.id))
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
