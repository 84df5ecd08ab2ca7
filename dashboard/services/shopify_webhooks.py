"""Shopify webhook events: stored first (deduplicated on X-Shopify-Webhook-Id), then applied.

Changes are applied by re-reading the current record from the Admin API (payloads can arrive
out of order; the API answers with the latest state), deletes mark records deleted, and
app/uninstalled disconnects the integration and destroys its token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from connectors.base import UnifiedRecord
from connectors.errors import AuthError, ConnectorError
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.streams import normalize_order, normalize_product
from dashboard.db import in_session
from dashboard.models import (
    RECORD_TABLES,
    Customer,
    Integration,
    IntegrationStatus,
    Order,
    WebhookEvent,
    WebhookStatus,
)
from dashboard.services.audit import record_audit
from dashboard.services.credentials import DbCredentialStore, delete_credentials
from dashboard.services.integrations import find_integration_by_shop
from dashboard.services.records import mark_deleted, upsert_records
from dashboard.settings import get_settings

log = logging.getLogger("hub.shopify.webhooks")
_tasks: set[asyncio.Task[None]] = set()
COMPLIANCE = {"customers/data_request", "customers/redact", "shop/redact"}


async def persist(*, webhook_id: str, topic: str, shop: str, body: bytes) -> uuid.UUID | None:
    """Store the event; None when this webhook id was received already (a redelivery)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {"unparsed": body[:2000].decode(errors="replace")}

    def store(session: Session) -> uuid.UUID | None:
        integration = find_integration_by_shop(session=session, shop_domain=shop) if shop else None
        event = WebhookEvent(
            platform="shopify",
            webhook_id=webhook_id[:128],
            topic=topic[:64],
            shop=shop[:255] or None,
            payload=payload if isinstance(payload, dict) else {"value": payload},
            integration_id=integration.id if integration else None,
        )
        session.add(event)
        try:
            session.flush()
        except sa.exc.IntegrityError:
            session.rollback()
            return None
        return event.id

    return await in_session(store)


def process_later(event_id: uuid.UUID) -> None:
    task = asyncio.get_running_loop().create_task(process(event_id))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def process(event_id: uuid.UUID) -> None:
    event = await in_session(lambda s: s.get(WebhookEvent, event_id))
    if event is None:
        return
    status, error = WebhookStatus.PROCESSED, None
    try:
        handled = await _apply(event)
        if not handled:
            status = WebhookStatus.IGNORED
    except (ConnectorError, ValueError, KeyError) as failure:
        status, error = WebhookStatus.FAILED, f"{type(failure).__name__}: {failure}"
        log.warning("webhook %s (%s) failed: %s", event.webhook_id, event.topic, error)

    def done(session: Session) -> None:
        row = session.get(WebhookEvent, event_id)
        if row is not None:
            row.status, row.error, row.processed_at = status.value, error, datetime.now(UTC)
            session.add(row)

    await in_session(done)


async def _apply(event: WebhookEvent) -> bool:
    topic, payload = event.topic, event.payload
    if topic in COMPLIANCE:
        await in_session(lambda s: _compliance(s, event))
        return True
    if event.integration_id is None:
        return False
    integration = await in_session(lambda s: s.get(Integration, event.integration_id))
    if integration is None or not integration.shop_domain:
        return False
    if topic == "app/uninstalled":
        await in_session(lambda s: _uninstalled(s, integration.id))
        return True
    resource, _, action = topic.partition("/")
    if action == "delete":
        if resource not in ("products", "orders", "customers"):
            return False
        kind = resource[:-1]
        gid = (
            payload.get("admin_graphql_api_id")
            or f"gid://shopify/{kind.capitalize()}/{payload['id']}"
        )
        await in_session(lambda s: _mark_deleted(s, integration.id, kind, gid))
        return True
    if resource in ("products", "orders"):
        kind = resource[:-1]
        gid = (
            payload.get("admin_graphql_api_id")
            or f"gid://shopify/{kind.capitalize()}/{payload['id']}"
        )
        connector = ShopifyConnector.from_settings(get_settings().model_dump())
        try:
            node = await connector.fetch_node(
                integration.shop_domain, DbCredentialStore(integration.id), kind, gid
            )
        except AuthError:
            return False  # the next sync marks the integration needs_reauth
        if node is None:
            await in_session(lambda s: _mark_deleted(s, integration.id, kind, gid))
            return True
        records: list[UnifiedRecord] = (
            normalize_product(node) if kind == "product" else normalize_order(node)
        )
        await in_session(
            lambda s: upsert_records(session=s, integration_id=integration.id, records=records)
        )
        return True
    if resource in ("customers", "inventory_levels"):
        from dashboard.services import sync

        stream = "customers" if resource == "customers" else "inventory"
        try:
            await sync.request_sync(integration_id=integration.id, stream=stream, trigger="webhook")
        except sync.SyncRefused:
            return False
        return True
    return False


def _mark_deleted(session: Session, integration_id: uuid.UUID, kind: str, gid: str) -> None:
    mark_deleted(session=session, integration_id=integration_id, kind=kind, external_ids=[gid])


def _uninstalled(session: Session, integration_id: uuid.UUID) -> None:
    integration = session.get(Integration, integration_id)
    if integration is None:
        return
    delete_credentials(session=session, integration_id=integration_id)
    integration.status = IntegrationStatus.DISCONNECTED.value
    integration.status_detail = (
        "The merchant removed the app from their shop. Send a reconnect link to sync again."
    )
    session.add(integration)
    record_audit(
        session=session,
        actor="shopify",
        action="integration.uninstalled",
        target=str(integration_id),
    )


def _rows(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _compliance(session: Session, event: WebhookEvent) -> None:
    """Mandatory GDPR topics: record the request; erase what Shopify asks us to forget.

    customers/redact removes the customer and the personal data on their orders;
    shop/redact (48 hours after an uninstall) removes every record of the shop.
    customers/data_request is recorded for the merchant to answer from the hub's tables.
    """
    payload = event.payload
    integration = find_integration_by_shop(session=session, shop_domain=event.shop or "")
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
        matches = [col(Order.external_id).in_(order_gids)] if order_gids else []
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
