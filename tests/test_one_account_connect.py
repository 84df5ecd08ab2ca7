"""One account, one integration: a shop or seller connected to one integration cannot be
connected to a second one. Over HTTP against the sandbox, the callback refuses it with a page
linking to the first (a disconnected integration gives its shop up); two racing callbacks cannot
both connect a shop, and the database refuses a second holder, on SQLite and PostgreSQL. The
wizard's warning, stale pending integrations and retry once:
tests/test_one_account_wizard_stale_retry.py."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select
from starlette.applications import Starlette

from connectors.amazon.client import BUCKETS
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import AuditLog, ConnectLink, Credential, Integration, Role
from dashboard.services import connect, integration_settings, sync
from dashboard.services import integrations as integration_service
from dashboard.services.auth import create_user
from dashboard.services.integrations import (
    AccountTaken,
    create_connect_link,
    create_integration,
    mark_connected,
)
from tests.conftest import reset_caches
from tests.one_account_helpers import SHOP, any_db
from tests.sandbox_server import (
    apps,
    control_headers,
    form_fields,
    running_sandbox,
    shopify_consent,
)

__all__ = ["any_db"]  # SQLite, then PostgreSQL: the fixture, imported for this module's tests

HUB = "http://hub.test"
SELLER, OTHER_SELLER = "A6ONEACCOUNT00", "A7SECONDSELLER"
US = "ATVPDKIKX0DER"


# --- over HTTP against the sandbox -------------------------------------------------------------


@pytest.fixture
async def shopify_hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    _throttles.clear()
    callback = {"shopify": [f"{HUB}/api/oauth/shopify/callback"]}
    with running_sandbox(seed=3, time_scale=50, redirect_uris=callback) as (base, _app):
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "sandbox-shopify-client-id")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_SECRET", apps(base).shopify_client_secret)
        reset_caches()
        SQLModel.metadata.create_all(get_engine())
        httpx.post(
            f"{base}/_sandbox/shopify/shops", headers=control_headers(base),
            json={"shop": SHOP, "products": 5, "orders": 2, "customers": 1},
        ).raise_for_status()  # fmt: skip
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_api(Starlette())), base_url=HUB
        ) as client:
            yield {"client": client, "base": base}
        await asyncio.gather(*connect._background)
        await sync.get_engine().wait()
        sync.set_engine(None)


def shopify_link(name: str, *, integration_id: uuid.UUID | None = None) -> tuple[uuid.UUID, str]:
    """A connect link for a new integration of SHOP (or a reconnect link of an existing one)."""
    with session_scope() as s:
        if integration_id is None:
            integration_id = create_integration(
                session=s, platform="shopify", display_name=name, shop_domain=SHOP,
                streams={"products": 15},
            ).id  # fmt: skip
            purpose = "connect"
        else:
            purpose = "reconnect"
        _, token = create_connect_link(session=s, integration_id=integration_id, purpose=purpose)
        return integration_id, token


async def shopify_approve(hub: dict, token: str) -> httpx.Response:
    """The merchant opens the link, approves on the sandbox's consent page, lands on the hub."""
    start = await hub["client"].get(f"/api/oauth/shopify/start?link={token}")
    assert start.status_code == 302
    location = start.headers["location"]
    params = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
    async with httpx.AsyncClient() as browser:  # the page's form, as a browser posts it
        answer = await shopify_consent(browser, location.split("?")[0], params)
    return await hub["client"].get(answer.headers["location"].removeprefix(HUB))


async def test_a_shop_connected_elsewhere_is_refused_with_a_link_to_it(shopify_hub: dict) -> None:
    first_id, token = shopify_link("Outdoor")
    assert (await shopify_approve(shopify_hub, token)).status_code == 200

    second_id, token = shopify_link("Outdoor again")
    refused = await shopify_approve(shopify_hub, token)

    assert refused.status_code == 409
    assert "Already connected" in refused.text
    assert f"{SHOP} is already connected" in refused.text and "Outdoor" in refused.text
    assert f"href='{HUB}/integrations/{first_id}'" in refused.text
    with session_scope() as s:
        second = s.get(Integration, second_id)
        assert second.status == "pending" and second.account_key is None
        # No token was asked for: the check comes before the code exchange.
        assert not s.exec(select(Credential).where(Credential.integration_id == second_id)).all()
        link = s.exec(select(ConnectLink).where(ConnectLink.integration_id == second_id)).one()
        assert link.used_at is None
        audit = s.exec(
            select(AuditLog).where(AuditLog.action == "integration.connect_refused")
        ).one()
        assert audit.target == str(second_id) and audit.context["connected_to"] == str(first_id)

    # Reconnecting the integration that holds the shop stays allowed.
    _, again = shopify_link("", integration_id=first_id)
    reconnected = await shopify_approve(shopify_hub, again)
    assert reconnected.status_code == 200 and "Connected" in reconnected.text
    with session_scope() as s:
        assert s.get(Integration, first_id).account_key == f"shopify:{SHOP}"


async def test_a_disconnected_integration_gives_its_shop_up(shopify_hub: dict) -> None:
    first_id, token = shopify_link("Outdoor")
    assert (await shopify_approve(shopify_hub, token)).status_code == 200
    with session_scope() as s:
        manager, _ = create_user(session=s, email="m@example.com", role=Role.MANAGER)
        integration_settings.disconnect_integration(
            session=s, integration_id=first_id, actor=manager
        )
    second_id, token = shopify_link("Outdoor, new")
    connected = await shopify_approve(shopify_hub, token)
    assert connected.status_code == 200 and "Connected" in connected.text
    with session_scope() as s:
        assert s.get(Integration, second_id).account_key == f"shopify:{SHOP}"


@pytest.fixture
async def amazon_hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    BUCKETS.buckets.clear()
    callback = {"amazon": [f"{HUB}/api/oauth/amazon/callback"]}
    with running_sandbox(seed=9, time_scale=50, redirect_uris=callback) as (base, _app):
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_AMAZON_BASE_URL", f"{base}/amazon")
        monkeypatch.setenv("HUB_AMAZON_APP_ID", apps(base).amazon_app_id)
        monkeypatch.setenv("HUB_AMAZON_CLIENT_ID", apps(base).amazon_client_id)
        monkeypatch.setenv("HUB_AMAZON_CLIENT_SECRET", apps(base).amazon_client_secret)
        reset_caches()
        SQLModel.metadata.create_all(get_engine())
        for seller in (SELLER, OTHER_SELLER):
            httpx.post(
                f"{base}/_sandbox/amazon/sellers", headers=control_headers(base),
                json={"selling_partner_id": seller, "marketplaces": [US], "orders": 3,
                      "listings": 2, "fba_items": 1},
            ).raise_for_status()  # fmt: skip
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_api(Starlette())), base_url=HUB
        ) as client:
            yield {"client": client, "base": base}
        await asyncio.gather(*connect._background)
        await sync.get_engine().wait()
        sync.set_engine(None)
    BUCKETS.buckets.clear()


def amazon_link(name: str) -> tuple[uuid.UUID, str]:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="amazon", display_name=name, region="na", marketplaces=[US],
            streams={"orders": 10},
        )  # fmt: skip
        _, token = create_connect_link(session=s, integration_id=integration.id)
        return integration.id, token


async def amazon_consent(hub: dict, token: str, seller: str) -> httpx.Response:
    start = await hub["client"].get(f"/api/oauth/amazon/start?link={token}")
    assert start.status_code == 302
    location = start.headers["location"]
    async with httpx.AsyncClient() as browser:  # the page's form, as a browser posts it
        page = await browser.get(location)
        answer = await browser.post(
            location,
            data={**form_fields(page.text), "decision": "approve", "selling_partner_id": seller},
        )
    return await hub["client"].get(answer.headers["location"].removeprefix(HUB))


async def test_a_second_integration_on_the_same_seller_is_refused(amazon_hub: dict) -> None:
    first_id, token = amazon_link("Seller NA")
    assert (await amazon_consent(amazon_hub, token, SELLER)).status_code == 200

    second_id, token = amazon_link("Seller NA again")
    refused = await amazon_consent(amazon_hub, token, SELLER)
    assert refused.status_code == 409
    assert f"Amazon seller {SELLER} (NA) is already connected" in refused.text
    assert "Seller NA" in refused.text and f"{HUB}/integrations/{first_id}" in refused.text

    # Another seller connects through an integration of its own.
    _, token = amazon_link("Other seller")
    assert (await amazon_consent(amazon_hub, token, OTHER_SELLER)).status_code == 200
    with session_scope() as s:
        second = s.get(Integration, second_id)
        assert second.status == "pending" and second.selling_partner_id is None
        assert not s.exec(select(Credential).where(Credential.integration_id == second_id)).all()
        holders = s.exec(select(Integration).where(col(Integration.account_key).is_not(None))).all()
        assert sorted(i.account_key for i in holders) == [
            f"amazon:na:{SELLER}",
            f"amazon:na:{OTHER_SELLER}",
        ]


# --- the race, on SQLite and PostgreSQL --------------------------------------------------------


def two_pending_on_one_shop() -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope() as s:
        ids = tuple(
            create_integration(
                session=s, platform="shopify", display_name=name, shop_domain=SHOP
            ).id
            for name in ("First", "Second")
        )
    return ids[0], ids[1]


async def test_two_racing_callbacks_cannot_both_connect_a_shop(
    any_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both callbacks pass the check before either writes: the unique account_key lets one
    commit; the other is refused, naming the winner, and keeps no token."""
    first, second = two_pending_on_one_shop()
    with session_scope() as s:  # what each callback stored before its last transaction
        for integration_id in (first, second):
            s.add(Credential(integration_id=integration_id, kind="access_token",
                             ciphertext="x", key_id="k"))  # fmt: skip
    both_checked = threading.Barrier(2, timeout=10)
    check = integration_service.refuse_account_taken
    calls = iter(range(1_000))

    def check_then_wait(**kwargs: Any) -> str | None:
        key = check(**kwargs)
        if next(calls) < 2:  # the two callbacks' checks; the loser's re-check goes on
            both_checked.wait()
        return key

    monkeypatch.setattr(integration_service, "refuse_account_taken", check_then_wait)

    async def finish(integration_id: uuid.UUID) -> object:
        try:
            return await connect.finish_connection(
                lambda s: mark_connected(session=s, integration_id=integration_id).display_name,
                integration_id=integration_id,
                shop_domain=SHOP,
            )
        except AccountTaken as taken:
            return taken

    results = await asyncio.gather(finish(first), finish(second))
    monkeypatch.setattr(integration_service, "refuse_account_taken", check)

    winners = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, AccountTaken)]
    assert len(winners) == 1 and len(refused) == 1, results
    with session_scope() as s:
        holder = s.exec(select(Integration).where(Integration.account_key == f"shopify:{SHOP}"))
        (winner,) = holder.all()
        assert refused[0].holder_id == winner.id and winner.display_name == winners[0]
        loser = first if winner.id == second else second
        assert s.get(Integration, loser).status == "pending"
        assert not s.exec(select(Credential).where(Credential.integration_id == loser)).all()


def test_the_database_refuses_a_second_holder(any_db: sa.Engine) -> None:
    first, second = two_pending_on_one_shop()
    with session_scope() as s:
        mark_connected(session=s, integration_id=first)
    with pytest.raises(sa.exc.IntegrityError), session_scope() as s:
        s.get(Integration, second).account_key = f"shopify:{SHOP}"
        s.flush()
    taken = pytest.raises(AccountTaken, match=r"already connected to the integration .First")
    with taken, session_scope() as s:
        mark_connected(session=s, integration_id=second)
