"""A withdrawn connect link cannot finish a connection, even one started before it was withdrawn.

The attacker: someone who got hold of a merchant's link (a forwarded email), opened it and sits
at the platform's consent page when the account manager revokes the link.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.errors import OAuthError
from dashboard.db import session_scope
from dashboard.models import ConnectLink, Integration
from dashboard.services.integrations import (
    consume_oauth_state,
    create_connect_link,
    create_integration,
    finish_connect_link,
    issue_oauth_state,
    revoke_connect_link,
)
from tests.test_shopify_connect import approve, hub, new_link  # noqa: F401  (hub: a fixture)


def _revoke(integration_id: uuid.UUID) -> None:
    with session_scope() as s:
        link = s.exec(select(ConnectLink).where(ConnectLink.integration_id == integration_id)).one()
        revoke_connect_link(session=s, link_id=link.id, actor=None)


async def test_a_link_revoked_after_its_flow_started_cannot_connect(hub: dict) -> None:  # noqa: F811
    integration_id, token = new_link()
    # The holder of the link starts the flow and approves at Shopify ...
    callback = await approve(hub, token)
    # ... while the account manager withdraws the link.
    _revoke(integration_id)

    result = await hub["client"].get(callback)

    assert result.status_code == 400
    assert "withdrawn" in result.text and "Traceback" not in result.text
    with session_scope() as s:
        integration = s.get(Integration, integration_id)
        assert integration is not None and integration.status == "pending"
        assert integration.connected_at is None


def _flow(session: Session) -> tuple[Integration, ConnectLink, str]:
    integration = create_integration(
        session=session, platform="shopify", display_name="A", shop_domain="a.myshopify.com"
    )
    link, _token = create_connect_link(session=session, integration_id=integration.id)
    state = issue_oauth_state(
        session=session,
        integration_id=integration.id,
        platform="shopify",
        shop_domain="a.myshopify.com",
        connect_link_id=link.id,
    )
    return integration, link, state


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_revocation_ends_every_state_minted_from_the_link(
    database: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("hub_db" if database == "sqlite" else "pg_hub_db")
    with session_scope() as session:
        _integration, link, state = _flow(session)
        _other_integration, _other_link, other_state = _flow_for_other_shop(session)
        revoke_connect_link(session=session, link_id=link.id, actor=None)
    with session_scope() as session, pytest.raises(OAuthError) as refused:
        consume_oauth_state(session=session, state=state, platform="shopify")
    assert "withdrawn" in refused.value.user_message
    with session_scope() as session:  # another link's flow is untouched
        assert consume_oauth_state(session=session, state=other_state, platform="shopify")


def _flow_for_other_shop(session: Session) -> tuple[Integration, ConnectLink, str]:
    integration = create_integration(
        session=session, platform="shopify", display_name="B", shop_domain="b.myshopify.com"
    )
    link, _token = create_connect_link(session=session, integration_id=integration.id)
    state = issue_oauth_state(
        session=session,
        integration_id=integration.id,
        platform="shopify",
        connect_link_id=link.id,
    )
    return integration, link, state


def test_a_link_revoked_while_the_code_is_exchanged_does_not_connect(session: Session) -> None:
    """The state was consumed before the revocation: finishing still refuses, and the
    transaction that would mark the integration connected rolls back."""
    integration, link, state = _flow(session)
    consume_oauth_state(session=session, state=state, platform="shopify")
    revoke_connect_link(session=session, link_id=link.id, actor=None)
    session.commit()
    with pytest.raises(OAuthError, match="revoked"), session_scope() as other:
        other.execute(
            sa.update(Integration)
            .where(col(Integration.id) == integration.id)
            .values(status="connected")
        )
        finish_connect_link(session=other, link_id=link.id)
    session.expire_all()
    reloaded = session.get(Integration, integration.id)
    assert reloaded is not None and reloaded.status == "pending"
