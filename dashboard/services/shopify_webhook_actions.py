"""What a stored Shopify webhook event does once it may act (``shopify_webhook_binding``):
products and orders are re-read from the Admin API (payloads can arrive out of order; the API
answers with the latest state), deletes mark records deleted, app/uninstalled disconnects the
integration and destroys its token, compliance topics go to ``shopify_compliance``, customer
and inventory changes ask for a sync of their stream. ``shopify_webhooks`` decides when.
"""

from __future__ import annotations

import uuid
from functools import partial

from sqlmodel import Session

from dashboard.db import in_session
from dashboard.models import Integration, IntegrationStatus, WebhookEvent
from dashboard.services import incidents, webhook_processing
from dashboard.services.app_credentials import APP_KINDS
from dashboard.services.audit import record_audit
from dashboard.services.credentials import delete_credentials
from dashboard.services.records import mark_deleted
from dashboard.services.shopify_compliance import apply_compliance
from dashboard.services.shopify_record_lookups import record_lookups
from dashboard.services.shopify_webhook_binding import UNINSTALLED_ACTION, bind

COMPLIANCE = {"customers/data_request", "customers/redact", "shop/redact"}


async def apply_event(event: WebhookEvent) -> bool:
    """Act on the event; False when there is nothing to do. Raises Rejected (from ``bind``)
    when the signed body does not back the headers or a destructive topic is unconfirmed."""
    integration = await bind(event)
    topic, payload = event.topic, event.payload
    if topic in COMPLIANCE:
        await in_session(lambda s: apply_compliance(s, event, integration.id))
        return True
    if not integration.shop_domain:
        return False
    if topic == "app/uninstalled":
        await in_session(lambda s: uninstalled(s, integration.id))
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
        # The events about one record received meanwhile share one fetch (and its upsert).
        refreshes = webhook_processing.record_refreshes()
        lookups = record_lookups()  # and the records asked for meanwhile, one look-up
        return bool(
            await refreshes.refresh(
                (integration.id, kind, gid),
                event.received_at,
                partial(lookups.refresh, integration.id, integration.shop_domain, kind, gid),
            )
        )
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


def uninstalled(session: Session, integration_id: uuid.UUID) -> None:
    integration = session.get(Integration, integration_id)
    if integration is None:
        return
    # The tokens go; an own app's credentials stay, so that reconnecting can use that app.
    delete_credentials(session=session, integration_id=integration_id, keep=APP_KINDS)
    integration.status = IntegrationStatus.DISCONNECTED.value
    integration.status_detail = (
        "The merchant removed the app from their shop. Send a reconnect link to sync again."
    )
    session.add(integration)
    record_audit(
        session=session,
        actor="shopify",
        action=UNINSTALLED_ACTION,
        target=str(integration_id),
    )
    incidents.uninstalled(session=session, integration_id=integration_id)  # issue 13: alert
