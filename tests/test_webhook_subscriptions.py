"""Removed webhook subscriptions come back, and the hub says so (issue 13).

Over real HTTP: a shop connected to the hub with every webhook subscription; someone deletes
two of them in the sandbox (its control API, as another tool with the app's token would); the
hub's check lists the app's subscriptions, re-creates the two, opens one incident in words
(what was removed, what the hub did, what is left to do) that the bell shows, audits it, and
resolves it at the next check, once they are back. Checks are claimed per shop, so several
processes do not check one shop twice.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.shopify.client import _throttles
from connectors.shopify.connector import ShopifyConnector
from connectors.shopify.queries import WEBHOOK_TOPICS
from dashboard.db import session_scope
from dashboard.models import AuditLog, Incident, Integration
from dashboard.services import connect, incidents, webhook_subscriptions
from dashboard.services import integrations as integration_service
from dashboard.services.credentials import DbCredentialStore
from dashboard.settings import get_settings
from dashboard.state.notifications import NotificationState
from tests.conftest import reset_caches
from tests.sandbox_server import control_headers, running_sandbox
from tests.test_shopify_sync import connect as connect_shop

SHOP = "hooks.myshopify.com"
REMOVED = ["ORDERS_CREATE", "PRODUCTS_UPDATE"]


@pytest.fixture
def sandbox_base(hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A sandbox the hub's own Shopify calls go to (the hub's app is the sandbox's)."""
    _throttles.clear()
    monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "sandbox-shopify-client-id")
    monkeypatch.setenv("HUB_PUBLIC_URL", "http://127.0.0.1:9")  # never called here
    with running_sandbox(seed=3, time_scale=50) as (base, _app):
        monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
        reset_caches()
        yield base
    _throttles.clear()


async def connected_with_webhooks(session: Session, base: str) -> uuid.UUID:
    """A connected shop subscribed to every topic, as the OAuth callback leaves it."""
    integration_id = connect_shop(session, base, SHOP, products=3, orders=3, customers=2)
    callback = integration_service.webhook_url("shopify")
    shopify = ShopifyConnector.from_settings(get_settings().model_dump())
    subscribed = await shopify.subscribe_webhooks(SHOP, DbCredentialStore(integration_id), callback)
    with session_scope() as s:
        connect.record_webhook_subscriptions(
            session=s, integration_id=integration_id, subscriptions=subscribed,
            callback_url=callback,
        )  # fmt: skip
    return integration_id


def sandbox_topics(base: str) -> set[str]:
    listed = httpx.get(
        f"{base}/_sandbox/shopify/shops/{SHOP}/webhook_subscriptions",
        headers=control_headers(base),
    )
    listed.raise_for_status()
    return {s["topic"] for s in listed.json()}


async def test_removed_subscriptions_are_recreated_with_an_incident_that_resolves(
    session: Session, sandbox_base: str
) -> None:
    base = sandbox_base
    integration_id = await connected_with_webhooks(session, base)
    assert sandbox_topics(base) == set(WEBHOOK_TOPICS)

    # All in place: nothing to say.
    checked = await webhook_subscriptions.check_subscriptions(integration_id)
    assert checked is not None and checked.missing == []
    with session_scope() as s:
        assert incidents.list_incidents(session=s) == []

    removed = httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/webhook_subscriptions/remove",
        headers=control_headers(base), json={"topics": REMOVED},
    )  # fmt: skip
    assert sorted(removed.json()["removed"]) == REMOVED
    assert sandbox_topics(base) == set(WEBHOOK_TOPICS) - set(REMOVED)

    checked = await webhook_subscriptions.check_subscriptions(integration_id)
    assert checked is not None and sorted(checked.missing) == REMOVED and checked.error is None
    assert sandbox_topics(base) == set(WEBHOOK_TOPICS)  # subscribed again

    bell = NotificationState(_reflex_internal_init=True)
    bell.apply(await bell.fetch())
    assert bell.bell_label == "Notifications, 1 open incident"
    [item] = bell.items
    assert item["cause"] == "webhook_subscription_removed"
    assert re.fullmatch(
        rf"2 webhook subscriptions were removed from {SHOP}: orders/create, products/update "
        r"\(found \d\d:\d\d\)",
        item["title"],
    )
    assert re.match(r"the hub subscribed again at \d\d:\d\d", item["advice"])
    with session_scope() as s:
        audit = s.exec(select(AuditLog).where(AuditLog.action == "webhooks.resubscribed")).one()
        assert audit.target == str(integration_id)
        assert audit.context["removed"] == ["orders/create", "products/update"]
        assert audit.context["resubscribed"] == ["orders/create", "products/update"]

    # The next check finds them all: the incident is over.
    checked = await webhook_subscriptions.check_subscriptions(integration_id)
    assert checked is not None and checked.missing == []
    bell.apply(await bell.fetch())
    assert bell.open_incidents == 0
    with session_scope() as s:
        incident = s.exec(select(Incident)).one()
        assert incident.status == "resolved"
        assert (
            incident.resolution and "every webhook subscription was in place" in incident.resolution
        )


async def test_a_refused_resubscription_says_what_is_left_to_do(
    session: Session, sandbox_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = sandbox_base
    integration_id = await connected_with_webhooks(session, base)
    httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/webhook_subscriptions/remove",
        headers=control_headers(base), json={},
    ).raise_for_status()  # fmt: skip
    assert sandbox_topics(base) == set()
    # The hub's callback address is not one Shopify accepts any more (a blank one here).
    monkeypatch.setattr(integration_service, "webhook_url", lambda platform: "")

    checked = await webhook_subscriptions.check_subscriptions(integration_id)
    assert checked is not None and len(checked.missing) == len(WEBHOOK_TOPICS)
    assert checked.error and "Address can't be blank" in checked.error
    with session_scope() as s:
        [row] = incidents.list_incidents(session=s)
    assert row["title"].startswith(f"{len(WEBHOOK_TOPICS)} webhook subscriptions were removed")
    assert "could not subscribe again" in row["advice"]
    assert "changes arrive only with scheduled syncs" in row["advice"]


async def test_each_shop_is_checked_once_per_interval_and_soon_after_a_repair(
    session: Session, sandbox_base: str
) -> None:
    base = sandbox_base
    integration_id = await connected_with_webhooks(session, base)
    now = datetime.now(UTC)
    assert await webhook_subscriptions.check_due(now=now) == 1  # never checked yet
    assert await webhook_subscriptions.check_due(now=now) == 0  # claimed: not twice
    later = now + timedelta(minutes=get_settings().shopify_webhook_check_minutes)
    assert await webhook_subscriptions.check_due(now=later) == 1

    httpx.post(
        f"{base}/_sandbox/shopify/shops/{SHOP}/webhook_subscriptions/remove",
        headers=control_headers(base), json={"topics": ["APP_UNINSTALLED"]},
    ).raise_for_status()  # fmt: skip
    with session_scope() as s:  # the last check was long ago
        s.execute(
            sa.update(Integration)
            .where(Integration.id == integration_id)  # type: ignore[arg-type]
            .values(webhooks_checked_at=now - timedelta(days=1))
        )
    assert await webhook_subscriptions.check_due() == 1  # found, repaired, incident open
    with session_scope() as s:
        assert len(incidents.list_incidents(session=s)) == 1
    # With the incident open, the shop is due again a minute later, not an interval later.
    soon = datetime.now(UTC) + webhook_subscriptions.CONFIRM_AFTER
    assert await webhook_subscriptions.check_due(now=soon) == 1
    with session_scope() as s:
        assert incidents.list_incidents(session=s) == []


def test_the_sandbox_refuses_a_malformed_removal(sandbox_base: str) -> None:
    base = sandbox_base
    httpx.post(
        f"{base}/_sandbox/shopify/shops", headers=control_headers(base), json={"shop": SHOP}
    ).raise_for_status()
    url = f"{base}/_sandbox/shopify/shops/{SHOP}/webhook_subscriptions/remove"
    bad = httpx.post(url, headers=control_headers(base), json={"topics": "ORDERS_CREATE"})
    assert bad.status_code == 400 and "topics must be a list" in bad.json()["error"]
    assert httpx.post(url, json={}).status_code == 401  # the control token is needed


async def test_subscriptions_at_an_old_address_are_made_again_at_the_hubs_own(
    session: Session, sandbox_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub moved (HUB_PUBLIC_URL changed): Shopify still delivers to the old address."""
    base = sandbox_base
    integration_id = await connected_with_webhooks(session, base)
    monkeypatch.setenv("HUB_PUBLIC_URL", "http://127.0.0.1:10")
    reset_caches()

    checked = await webhook_subscriptions.check_subscriptions(integration_id)
    assert checked is not None and sorted(checked.elsewhere) == sorted(WEBHOOK_TOPICS)
    listed = httpx.get(
        f"{base}/_sandbox/shopify/shops/{SHOP}/webhook_subscriptions",
        headers=control_headers(base),
    ).json()
    at_new = {s["topic"] for s in listed if s["uri"] == "http://127.0.0.1:10/api/webhooks/shopify"}
    assert at_new == set(WEBHOOK_TOPICS)
    assert len(listed) == 2 * len(WEBHOOK_TOPICS)  # the old ones are left alone
    with session_scope() as s:
        [row] = incidents.list_incidents(session=s)
    assert row["advice"].startswith(
        f"{len(WEBHOOK_TOPICS)} of them still go to another address, not this hub's "
        "http://127.0.0.1:10/api/webhooks/shopify"
    )
