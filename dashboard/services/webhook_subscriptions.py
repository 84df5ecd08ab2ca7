"""The shop's webhook subscriptions stay what the hub needs.

A subscription can disappear after connecting: someone (or another tool with the app's
token) deletes it, or Shopify removes one whose deliveries kept failing. Nothing tells the
hub; changes then arrive only with scheduled syncs. So every hub process, on its webhook
sweep (``shopify_webhooks.webhook_lifespan``), checks the connected Shopify shops that are
due: it lists the app's subscriptions (``webhookSubscriptions``), compares them with the
topics the hub needs at its own callback URL, re-creates the missing ones, and opens a
``webhook_subscription_removed`` incident in words (what was removed, what the hub did, what
is left to do). A shop with an open incident is checked again after ``CONFIRM_AFTER``; the
incident resolves once every subscription is in place again.

Each shop is checked by one process per ``HUB_SHOPIFY_WEBHOOK_CHECK_MINUTES``: a process
claims it with a conditional update of ``integrations.webhooks_checked_at``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlmodel import Session, col

from connectors.errors import AuthError, ConnectorError
from connectors.shopify.queries import WEBHOOK_TOPICS
from dashboard.db import in_session
from dashboard.models import (
    Incident,
    IncidentCause,
    IncidentStatus,
    Integration,
    Platform,
)
from dashboard.services import connect, incidents
from dashboard.services import integrations as integration_service
from dashboard.services.app_credentials import shopify_connector_for
from dashboard.services.audit import record_audit
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.incident_words import hhmm
from dashboard.services.sync_queue import SYNCABLE
from dashboard.settings import get_settings

log = logging.getLogger("hub.shopify.webhooks")
INTEGRATIONS: sa.Table = Integration.__table__  # type: ignore[attr-defined]
# After re-creating subscriptions, look again this soon: the incident ends once they stayed.
CONFIRM_AFTER = timedelta(minutes=1)
RESUBSCRIBED_ACTION = "webhooks.resubscribed"


def header_topic(topic: str) -> str:
    """The X-Shopify-Topic of a GraphQL topic, as people read it: ORDERS_CREATE ->
    orders/create, INVENTORY_LEVELS_UPDATE -> inventory_levels/update."""
    resource, _, action = topic.rpartition("_")
    return f"{resource.lower()}/{action.lower()}"


@dataclass
class Checked:
    """What one check found and did."""

    missing: list[str] = field(default_factory=list)  # GraphQL topics not subscribed
    # Of those, the ones subscribed at another address (HUB_PUBLIC_URL changed, or another
    # hub uses the same app): left alone, they may be another hub's.
    elsewhere: list[str] = field(default_factory=list)
    resubscribed: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None  # why re-subscribing failed


def _due(now: datetime, every: timedelta) -> sa.ColumnElement[bool]:
    """The shop was never checked, its check is older than ``every``, or it has an open
    webhook incident and its last check is older than ``CONFIRM_AFTER``."""
    checked = INTEGRATIONS.c.webhooks_checked_at
    open_incident = (
        sa.select(col(Incident.id))
        .where(
            col(Incident.integration_id) == INTEGRATIONS.c.id,
            col(Incident.cause) == IncidentCause.WEBHOOK_SUBSCRIPTION_REMOVED.value,
            col(Incident.status) == IncidentStatus.OPEN.value,
        )
        .exists()
    )
    return sa.or_(
        checked.is_(None),
        checked <= now - every,
        sa.and_(checked <= now - CONFIRM_AFTER, open_incident),
    )


def _claim_due(session: Session, now: datetime, every: timedelta) -> list[uuid.UUID]:
    """The connected Shopify shops due for a check, each claimed for this process (one
    conditional update each: of several processes, one wins)."""
    candidates = session.execute(
        sa.select(INTEGRATIONS.c.id).where(
            INTEGRATIONS.c.platform == Platform.SHOPIFY.value,
            INTEGRATIONS.c.status.in_(SYNCABLE),
            INTEGRATIONS.c.shop_domain.is_not(None),
            _due(now, every),
        )
    ).scalars()
    claimed = []
    for integration_id in list(candidates):
        taken = session.execute(
            sa.update(INTEGRATIONS)
            .where(INTEGRATIONS.c.id == integration_id, _due(now, every))
            .values(webhooks_checked_at=now)
        )
        if taken.rowcount:  # type: ignore[attr-defined]
            claimed.append(integration_id)
    return claimed


async def check_due(*, now: datetime | None = None) -> int:
    """Check every shop that is due (``HUB_SHOPIFY_WEBHOOK_CHECK_MINUTES``; 0 turns checks
    off); returns how many were checked."""
    minutes = get_settings().shopify_webhook_check_minutes
    if minutes <= 0:
        return 0
    claimed = await in_session(
        partial(_claim_due, now=now or datetime.now(UTC), every=timedelta(minutes=minutes))
    )
    for integration_id in claimed:
        try:
            await check_subscriptions(integration_id)
        except Exception:  # one shop's trouble must not stop the others' checks
            log.exception("checking the webhook subscriptions of %s failed", integration_id)
    return len(claimed)


async def check_subscriptions(integration_id: uuid.UUID) -> Checked | None:
    """List the shop's subscriptions, re-create the missing ones, and open or resolve the
    integration's ``webhook_subscription_removed`` incident. None when the shop could not be
    asked (no such integration, access refused: the next sync reports that, or the platform
    did not answer: the next check asks again)."""
    integration = await in_session(lambda s: s.get(Integration, integration_id))
    if integration is None or not integration.shop_domain:
        return None
    shop = integration.shop_domain
    store = DbCredentialStore(integration_id)
    callback = integration_service.webhook_url(Platform.SHOPIFY.value)
    connector = await shopify_connector_for(integration_id)
    try:
        listed = await connector.list_webhook_subscriptions(shop, store)
    except (AuthError, ConnectorError) as error:
        log.info("webhook subscriptions of %s not checked: %s", shop, type(error).__name__)
        return None
    present = {s["topic"] for s in listed if s["uri"] == callback}
    checked = Checked(missing=[topic for topic in WEBHOOK_TOPICS if topic not in present])
    other = {s["topic"] for s in listed if s["uri"] != callback}
    checked.elsewhere = [topic for topic in checked.missing if topic in other]
    if checked.missing:
        try:
            checked.resubscribed = await connector.subscribe_webhooks(
                shop, store, callback, topics=checked.missing
            )
        except ConnectorError as error:
            checked.error = f"{type(error).__name__}: {error}"[:500]
        log.warning(
            "webhook subscriptions of %s were removed: %s; %s", shop,
            ", ".join(header_topic(t) for t in checked.missing),
            f"subscribing again failed ({checked.error})" if checked.error else "subscribed again",
        )  # fmt: skip
    current = {s["topic"]: s["id"] for s in listed if s["uri"] == callback}
    await in_session(
        partial(_record, integration_id=integration_id, checked=checked, callback=callback,
                current=current)
    )  # fmt: skip
    return checked


def _record(
    session: Session,
    integration_id: uuid.UUID,
    checked: Checked,
    callback: str,
    current: dict[str, str],
) -> None:
    """One transaction: the subscriptions as they are now, the incident, the audit entry."""
    integration = session.get(Integration, integration_id)
    if integration is None:
        return
    connect.record_webhook_subscriptions(
        session=session, integration_id=integration_id,
        subscriptions={**current, **checked.resubscribed}, callback_url=callback,
    )  # fmt: skip
    if not checked.missing:
        incidents.webhook_subscriptions_back(session=session, integration=integration)
        return
    topics = sorted(header_topic(topic) for topic in checked.missing)
    now = hhmm(datetime.now(UTC))
    if checked.error is None:
        done = (
            f"the hub subscribed again at {now} and checks within a minute that they stay; "
            "if they vanish again, find who removes them (another app or tool using the "
            "shop's access); meanwhile scheduled syncs still bring every change"
        )
    else:
        done = (
            f"the hub could not subscribe again at {now} ({checked.error}); changes arrive "
            "only with scheduled syncs until it can: it tries again at the next check, and "
            "reconnecting the integration subscribes anew"
        )
    if checked.elsewhere:
        done = (
            f"{len(checked.elsewhere)} of them still go to another address, not this hub's "
            f"{callback} (HUB_PUBLIC_URL changed, or another hub uses this app; those were "
            f"left alone); {done}"
        )
    incidents.webhook_subscriptions_removed(
        session=session, integration=integration, topics=topics, done=done
    )
    record_audit(
        session=session, actor="system", action=RESUBSCRIBED_ACTION, target=str(integration_id),
        context={
            "shop": integration.shop_domain, "removed": topics,
            "resubscribed": sorted(header_topic(t) for t, i in checked.resubscribed.items() if i),
            "error": checked.error,
            "elsewhere": sorted(header_topic(t) for t in checked.elsewhere),
        },
    )  # fmt: skip
