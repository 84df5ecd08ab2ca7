"""Whether a stored Shopify webhook may act: the one check every event passes before it is
applied (``shopify_webhooks._apply``), whichever process applies it.

Shopify signs the body only; the topic and the shop come in unsigned headers. So an event
acts only when

- the body has the shape Shopify publishes for the header's topic
  (``connectors.shopify.webhooks``);
- the shop the body names (compliance topics, app/uninstalled) is the header's shop, and
  the hub has an integration for that shop;
- a destructive topic's shop has really lost access: ``app/uninstalled`` only once one
  Admin API call with the stored token fails as unauthorized (the connector has already
  tried to refresh an expiring one), ``shop/redact`` only for a shop whose uninstall the
  hub recorded at least ``SHOP_REDACT_AFTER`` ago and that has not come back since.

Anything else raises ``Rejected``: the event is not applied, is logged and audited as
``webhook.rejected``, and Shopify got its 200 already (so it does not retry).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from connectors.errors import AuthRevoked, InvalidInput
from connectors.shopify import auth as shopify_auth
from connectors.shopify.domains import validate_shop_domain
from connectors.shopify.webhooks import (
    APP_UNINSTALLED,
    COMPLIANCE_TOPICS,
    SHOP_REDACT,
    shape_problem,
    signed_shop,
)
from dashboard.db import in_session
from dashboard.models import AuditLog, Integration, IntegrationStatus, WebhookEvent
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.integrations import find_integration_by_shop
from dashboard.services.metrics import WEBHOOKS_REJECTED

# Shopify sends shop/redact 48 hours after the uninstall.
SHOP_REDACT_AFTER = timedelta(hours=48)
UNINSTALLED_ACTION = "integration.uninstalled"  # the audit entry of a confirmed uninstall
REJECTED_ACTION = "webhook.rejected"


class Rejected(Exception):
    """The event must not act; the message says why (for the log and the audit log)."""


# (shop, any status) -> its integration, read for a batch of events at once (``known``).
Known = dict[tuple[str, bool], Integration | None]
_known: ContextVar[Known | None] = ContextVar("known_integrations", default=None)


def integrations_of(session: Session, events: Iterable[WebhookEvent]) -> Known:
    """The integrations ``bind`` looks up for ``events``: one query per shop, not per event."""
    found: Known = {}
    for event in events:
        try:
            key = (validate_shop_domain(event.shop or ""), event.topic in COMPLIANCE_TOPICS)
        except InvalidInput:
            continue
        if key not in found:
            found[key] = _integration_of(session, key[0], any_status=key[1])
    return found


@contextmanager
def known(integrations: Known) -> Iterator[None]:
    """``bind`` in this block (and the tasks it starts) takes the integrations read already."""
    token = _known.set(integrations)
    try:
        yield
    finally:
        _known.reset(token)


async def bind(event: WebhookEvent) -> Integration:
    """The integration the event may act on; raises Rejected when it may not act at all.

    Raises the connector's TransientError/RateLimited when the uninstall could not be
    confirmed yet (the event is retried).
    """
    try:
        return await _bind(event)
    except Rejected:
        WEBHOOKS_REJECTED.labels("shopify", "binding").inc()
        raise


async def _bind(event: WebhookEvent) -> Integration:
    topic, payload = event.topic, event.payload
    problem = shape_problem(topic, payload)
    if problem is not None:
        raise Rejected(f"the signed body is not a {topic} body: {problem}")
    try:
        shop = validate_shop_domain(event.shop or "")
    except InvalidInput:
        raise Rejected("no valid X-Shopify-Shop-Domain") from None
    named = signed_shop(topic, payload)
    if named is not None and named != shop:
        raise Rejected(f"the signed body names {named[:255]}, the header {shop}")
    # Privacy topics also concern a shop that has uninstalled the app (shop/redact only does).
    key = (shop, topic in COMPLIANCE_TOPICS)
    read = _known.get()
    if read is not None and key in read:
        integration = read[key]
    else:
        integration = await in_session(lambda s: _integration_of(s, shop, any_status=key[1]))
    if integration is None:
        raise Rejected(f"no integration for {shop}")
    if topic == APP_UNINSTALLED:
        await _confirm_access_gone(integration, shop)
    elif topic == SHOP_REDACT:
        await in_session(lambda s: _confirm_uninstalled_long_ago(s, integration))
    return integration


def _integration_of(session: Session, shop: str, *, any_status: bool) -> Integration | None:
    if not any_status:
        return find_integration_by_shop(session=session, shop_domain=shop)
    return session.exec(
        select(Integration)
        .where(Integration.platform == "shopify", Integration.shop_domain == shop)
        .order_by(col(Integration.created_at).desc())
    ).first()


async def _confirm_access_gone(integration: Integration, shop: str) -> None:
    """One Admin API call with the stored token: only an unauthorized answer confirms."""
    store = DbCredentialStore(integration.id)
    if await store.get(shopify_auth.ACCESS_TOKEN) is None:
        raise Rejected("no stored token to confirm the uninstall with")
    from dashboard.services.app_credentials import shopify_connector_for

    connector = await shopify_connector_for(integration.id)  # its own app, if it has one
    try:
        await connector.fetch_shop(shop, store)
    except AuthRevoked:
        return
    raise Rejected(f"the hub's token for {shop} still works: the app is installed")


def _confirm_uninstalled_long_ago(session: Session, integration: Integration) -> None:
    if integration.status != IntegrationStatus.DISCONNECTED.value:
        raise Rejected(f"{integration.shop_domain} is {integration.status}, not uninstalled")
    uninstalled_at = session.exec(
        select(AuditLog.at)
        .where(AuditLog.action == UNINSTALLED_ACTION, AuditLog.target == str(integration.id))
        .order_by(col(AuditLog.at).desc())
    ).first()
    if uninstalled_at is None:
        raise Rejected(f"no uninstall of {integration.shop_domain} was recorded")
    if uninstalled_at.tzinfo is None:  # SQLite hands back naive UTC
        uninstalled_at = uninstalled_at.replace(tzinfo=UTC)
    if datetime.now(UTC) - uninstalled_at < SHOP_REDACT_AFTER:
        raise Rejected(
            f"{integration.shop_domain} was uninstalled at {uninstalled_at.isoformat()}, "
            f"less than {SHOP_REDACT_AFTER} ago"
        )
