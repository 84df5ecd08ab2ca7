from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from connectors.errors import InvalidInput, OAuthError
from dashboard.models import AuditLog, IntegrationStatus, OAuthState, Role, StreamConfig
from dashboard.services.auth import create_user
from dashboard.services.integrations import (
    LinkInvalid,
    consume_oauth_state,
    create_connect_link,
    create_integration,
    decline_connect_link,
    issue_oauth_state,
    mark_connected,
    resolve_connect_link,
    revoke_connect_link,
)


@pytest.fixture
def manager(session: Session):
    return create_user(session=session, email="m@example.com", role=Role.MANAGER)[0]


def test_shopify_integration_starts_pending_with_its_streams(session: Session, manager) -> None:
    integration = create_integration(
        session=session,
        platform="shopify",
        display_name=" Acme ",
        shop_domain="ACME.myshopify.com",
        streams={"products": 30, "orders": 5},
        actor=manager,
    )
    assert integration.status == IntegrationStatus.PENDING
    assert integration.shop_domain == "acme.myshopify.com"
    streams = session.exec(
        select(StreamConfig).where(StreamConfig.integration_id == integration.id)
    ).all()
    assert {(s.stream, s.interval_minutes) for s in streams} == {("products", 30), ("orders", 5)}
    assert session.exec(select(AuditLog).where(AuditLog.action == "integration.create")).one()


@pytest.mark.parametrize(
    "shop",
    [
        "shop.myshopify.com.evil.com",
        "127.0.0.1",
        "acme.myshopify.com:8443",
        "evil.com/acme.myshopify.com",  # the shop smuggled into a path (its admin URL is fine)
        "evil.com",
        "",
        "acme.myshopify.com@evil.com",
    ],
)
def test_hostile_shop_domains_are_refused(session: Session, shop: str) -> None:
    with pytest.raises(InvalidInput):
        create_integration(session=session, platform="shopify", display_name="x", shop_domain=shop)


def test_amazon_needs_a_known_region(session: Session) -> None:
    with pytest.raises(InvalidInput, match="region"):
        create_integration(session=session, platform="amazon", display_name="x", region="mars")
    integration = create_integration(
        session=session,
        platform="amazon",
        display_name="Seller",
        region="EU",
        marketplaces=["A1PA6795UKMFR9"],
    )
    assert integration.region == "eu" and integration.marketplaces == ["A1PA6795UKMFR9"]


def test_connect_link_lifecycle(session: Session, manager) -> None:
    integration = create_integration(
        session=session, platform="shopify", display_name="A", shop_domain="a.myshopify.com"
    )
    link, token = create_connect_link(session=session, integration_id=integration.id, actor=manager)
    assert token not in link.token_hash
    assert resolve_connect_link(session=session, token=token).id == link.id
    with pytest.raises(LinkInvalid) as unknown:
        resolve_connect_link(session=session, token=token + "x")
    assert unknown.value.reason == "unknown"

    link.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(LinkInvalid, match="expired"):
        resolve_connect_link(session=session, token=token)

    other, other_token = create_connect_link(session=session, integration_id=integration.id)
    revoke_connect_link(session=session, link_id=other.id, actor=manager)
    with pytest.raises(LinkInvalid, match="withdrawn"):
        resolve_connect_link(session=session, token=other_token)

    _third, third_token = create_connect_link(session=session, integration_id=integration.id)
    decline_connect_link(session=session, token=third_token)
    with pytest.raises(LinkInvalid, match="declined"):
        resolve_connect_link(session=session, token=third_token)


def test_oauth_state_is_single_use_and_expires(session: Session) -> None:
    integration = create_integration(
        session=session, platform="shopify", display_name="A", shop_domain="a.myshopify.com"
    )
    state = issue_oauth_state(
        session=session,
        integration_id=integration.id,
        platform="shopify",
        shop_domain="a.myshopify.com",
    )
    row = consume_oauth_state(session=session, state=state, platform="shopify")
    assert row.integration_id == integration.id and row.shop_domain == "a.myshopify.com"
    with pytest.raises(OAuthError, match="replayed") as replay:
        consume_oauth_state(session=session, state=state, platform="shopify")
    assert "cannot be reused" in replay.value.user_message
    with pytest.raises(OAuthError, match="unknown"):
        consume_oauth_state(session=session, state="forged", platform="shopify")

    late = issue_oauth_state(session=session, integration_id=integration.id, platform="shopify")
    late_row = session.exec(
        select(OAuthState).where(OAuthState.state_hash == hashlib.sha256(late.encode()).hexdigest())
    ).one()
    late_row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(OAuthError, match="expired"):
        consume_oauth_state(session=session, state=late, platform="shopify")
    other = issue_oauth_state(session=session, integration_id=integration.id, platform="amazon")
    with pytest.raises(OAuthError, match="unknown"):
        consume_oauth_state(session=session, state=other, platform="shopify")


def test_mark_connected_fills_details(session: Session) -> None:
    integration = create_integration(
        session=session, platform="amazon", display_name="S", region="na"
    )
    mark_connected(
        session=session,
        integration_id=integration.id,
        selling_partner_id="A1B2",
        marketplaces=["ATVPDKIKX0DER"],
    )
    assert integration.status == "connected" and integration.selling_partner_id == "A1B2"
    assert integration.connected_at is not None
    # It holds its seller in its region from now on.
    assert integration.account_key == "amazon:na:A1B2"


def test_an_integration_holds_its_shop_until_it_is_disconnected(session: Session, manager) -> None:
    from dashboard.services.integration_settings import disconnect_integration
    from dashboard.services.integrations import find_connected_account, find_integration_by_shop

    shop = "held.myshopify.com"
    holder = create_integration(
        session=session, platform="shopify", display_name="Holder", shop_domain=shop
    )
    assert find_connected_account(session=session, platform="shopify", shop_domain=shop) is None
    mark_connected(session=session, integration_id=holder.id)
    newer = create_integration(
        session=session, platform="shopify", display_name="Newer", shop_domain=shop
    )
    found = find_connected_account(
        session=session, platform="shopify", shop_domain="HELD.myshopify.com"
    )
    assert found is not None and found.id == holder.id
    # Webhooks of the shop go to the holder, not to the newer pending duplicate.
    assert find_integration_by_shop(session=session, shop_domain=shop).id == holder.id
    disconnect_integration(session=session, integration_id=holder.id, actor=manager)
    assert find_connected_account(session=session, platform="shopify", shop_domain=shop) is None
    assert find_integration_by_shop(session=session, shop_domain=shop).id == newer.id


def test_the_wizard_integration_is_updated_in_place_while_pending(
    session: Session, manager
) -> None:
    from dashboard.services.integrations import save_pending_integration

    first = save_pending_integration(
        session=session, pending_id=None, platform="shopify", display_name="Acme",
        shop_domain="acme.myshopify.com", actor=manager,
    )  # fmt: skip
    started = issue_oauth_state(session=session, integration_id=first.id, platform="shopify",
                                shop_domain="acme.myshopify.com")  # fmt: skip
    again = save_pending_integration(
        session=session, pending_id=first.id, platform="shopify", display_name="Acme EU",
        shop_domain="acme-eu.myshopify.com", streams={"orders": 5}, actor=manager,
    )  # fmt: skip
    assert again.id == first.id and again.shop_domain == "acme-eu.myshopify.com"
    streams = session.exec(
        select(StreamConfig.stream).where(StreamConfig.integration_id == first.id)
    ).all()
    assert streams == ["orders"]
    # A consent started for the old shop cannot connect the integration to it any more.
    with pytest.raises(OAuthError, match="expired"):
        consume_oauth_state(session=session, state=started, platform="shopify")
    # Once it connected, the wizard makes a new one instead of changing it.
    mark_connected(session=session, integration_id=first.id)
    third = save_pending_integration(
        session=session, pending_id=first.id, platform="shopify", display_name="Other",
        shop_domain="other.myshopify.com", actor=manager,
    )  # fmt: skip
    assert third.id != first.id
