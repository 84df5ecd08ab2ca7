"""Incidents, not notifications: an uninstall, a Decline, lost access and an unused connect
link each open one incident in plain words (the bell and the attention panel read them), and
access returning resolves them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from dashboard.models import IntegrationStatus, Notification
from dashboard.services import health, incident_sweeps, incidents, overview
from dashboard.services.integrations import (
    create_connect_link,
    create_integration,
    decline_connect_link,
    mark_connected,
)
from dashboard.services.shopify_webhook_actions import uninstalled as _uninstalled


def shop(session: Session, name: str = "Acme") -> uuid.UUID:
    integration = create_integration(
        session=session, platform="shopify", display_name=name,
        shop_domain=f"{name.lower()}.myshopify.com", streams={"products": 15},
    )  # fmt: skip
    return integration.id


def notifications(session: Session) -> list[tuple[str, str]]:
    rows = session.exec(select(Notification).order_by(Notification.created_at)).all()
    return [(n.kind, n.message) for n in rows]


def test_an_uninstall_opens_one_incident_the_bell_and_attention_panel_show(
    session: Session,
) -> None:
    integration_id = shop(session)
    mark_connected(session=session, integration_id=integration_id)
    _uninstalled(session, integration_id)
    _uninstalled(session, integration_id)  # Shopify retries its webhook: still one incident
    session.commit()
    [incident] = overview.attention(session=session)
    assert incident["cause"] == "uninstalled"
    assert incident["title"] == "The merchant removed the app from acme.myshopify.com"
    assert "send a reconnect link" in incident["advice"]
    assert incident["occurrences"] == 2
    [(kind, message)] = notifications(session)
    assert kind == "incident_opened" and message.startswith("Acme: The merchant removed the app")
    assert health.integration_health(session=session, ids=[integration_id])[
        str(integration_id)
    ]["health"] == "uninstalled"  # fmt: skip

    mark_connected(session=session, integration_id=integration_id)  # the merchant came back
    session.commit()
    assert overview.attention(session=session) == []
    [resolved] = incidents.list_incidents(session=session, status="resolved")
    assert resolved["resolution"] == "connected again"
    assert [kind for kind, _ in notifications(session)] == ["incident_opened", "incident_resolved"]


def test_a_decline_shows_as_declined_with_an_incident(session: Session) -> None:
    integration_id = shop(session)
    _link, token = create_connect_link(session=session, integration_id=integration_id)
    decline_connect_link(session=session, token=token)
    session.commit()
    row = health.integration_health(session=session, ids=[integration_id])[str(integration_id)]
    assert row["health"] == "declined"  # not "Not connected yet"
    [incident] = overview.attention(session=session)
    assert incident["cause"] == "declined"
    assert incident["title"] == "The merchant declined the connection request"
    assert overview.health_cards(session=session)["access"] == 1


def test_a_connect_link_that_expired_unused_becomes_one_incident(session: Session) -> None:
    waiting = shop(session, "Waiting")
    fresh = shop(session, "Fresh")
    create_connect_link(session=session, integration_id=waiting, ttl=timedelta(seconds=-1))
    create_connect_link(session=session, integration_id=fresh)
    session.commit()
    assert incident_sweeps.sweep_expired_links(session=session) == 1
    assert incident_sweeps.sweep_expired_links(session=session) == 0  # once, not every sweep
    later = datetime.now(UTC) + timedelta(days=30)
    assert incident_sweeps.sweep_expired_links(session=session, now=later) == 1  # Fresh's, later
    causes = {(i["integration"], i["cause"]) for i in overview.attention(session=session)}
    assert causes == {
        ("Waiting", "connect_link_expired_unused"),
        ("Fresh", "connect_link_expired_unused"),
    }


def test_a_new_connect_link_ends_the_incident_and_its_expiry_opens_another(
    session: Session,
) -> None:
    waiting = shop(session, "Waiting")
    create_connect_link(session=session, integration_id=waiting, ttl=timedelta(seconds=-1))
    session.commit()
    assert incident_sweeps.sweep_expired_links(session=session) == 1
    [incident] = overview.attention(session=session)
    assert incident["title"] == "The connect link expired before the merchant used it"
    assert "send the merchant a new connect link" in incident["advice"]

    # The manager does what it says: the incident is over while the new link is out.
    create_connect_link(session=session, integration_id=waiting, ttl=timedelta(days=3))
    session.commit()
    assert incident_sweeps.sweep_expired_links(session=session) == 0
    assert overview.attention(session=session) == []
    [resolved] = incidents.list_incidents(session=session, status="resolved")
    assert resolved["resolution"] == "a new connect link was sent"

    # That one expires unused too: a new incident, once.
    later = datetime.now(UTC) + timedelta(days=4)
    assert incident_sweeps.sweep_expired_links(session=session, now=later) == 1
    assert incident_sweeps.sweep_expired_links(session=session, now=later) == 0
    assert [i["cause"] for i in overview.attention(session=session)] == [
        "connect_link_expired_unused"
    ]


def test_raw_errors_become_a_category_and_words() -> None:
    cases = {
        "POST /sandbox/shopify/x.myshopify.com/admin/api/2026-10/graphql.json answered 503": (
            "server_error", "Shopify answered 503",
        ),
        "gave up after 4 attempts: SP-API searchOrders answered 429 (throttled)": (
            "rate_limited", "Shopify kept throttling the hub (429)",
        ),
        "the platform refused the hub's access (401 invalid token); reconnect": (
            "access_refused", "Shopify refused the hub's access",
        ),
        "internal error: KeyError: 'id'": ("internal", "the hub failed while syncing Shopify"),
        "productsCount: field is not allowed": ("platform_rejected", "Shopify refused a request"),
    }  # fmt: skip
    for raw, (category, words) in cases.items():
        described = incidents.describe_failure(raw, platform="shopify", interval_minutes=5)
        assert (described.category, described.words[: len(words)]) == (category, words), raw
    assert incidents.describe_failure("answered 502", platform="amazon").advice.startswith(
        "Amazon's SP-API is down"
    )


def test_status_is_unchanged_for_a_plain_disconnect(session: Session) -> None:
    integration_id = shop(session)
    from dashboard.services.integrations import set_integration_status

    set_integration_status(
        session=session, integration_id=integration_id, status=IntegrationStatus.DISCONNECTED
    )
    session.commit()
    row = health.integration_health(session=session, ids=[integration_id])[str(integration_id)]
    assert row["health"] == "disconnected"
    assert overview.attention(session=session) == []
