"""A merchant back on their connect link after leaving the platform's consent page without
approving (Shopify sends nothing back on a cancel) reads "Connection cancelled"."""

from __future__ import annotations

import sqlalchemy as sa
from reflex.istate.data import RouterData

from dashboard.db import session_scope
from dashboard.pages.connect import ConnectState
from dashboard.services.integrations import (
    consume_oauth_state,
    create_connect_link,
    create_integration,
    issue_oauth_state,
)


async def _open_link(token: str) -> ConnectState:
    page = ConnectState(_reflex_internal_init=True)
    page.router = RouterData.from_router_data(
        {"pathname": "/connect/[token]", "asPath": f"/connect/{token}"}
    )
    await ConnectState.load_link.fn(page)
    return page


async def test_the_link_says_connection_cancelled_after_an_unfinished_consent(
    hub_db: sa.Engine,
) -> None:
    with session_scope() as s:
        integration = create_integration(session=s, platform="shopify", display_name="Trail",
                                         shop_domain="trail.myshopify.com")  # fmt: skip
        link, token = create_connect_link(session=s, integration_id=integration.id)
        link_id, integration_id = link.id, integration.id

    opened = await _open_link(token)
    assert opened.loaded and not opened.problem and not opened.cancelled  # first visit

    with session_scope() as s:  # Approve: off to Shopify, which the merchant leaves
        state = issue_oauth_state(
            session=s, integration_id=integration_id, platform="shopify",
            shop_domain="trail.myshopify.com", connect_link_id=link_id,
        )  # fmt: skip
    back = await _open_link(token)
    assert back.cancelled and not back.problem  # and Approve is offered again

    with session_scope() as s:  # approved after all: the callback used the state
        consume_oauth_state(session=s, state=state, platform="shopify")
    assert not (await _open_link(token)).cancelled
