"""Install flow and webhooks through the hub's real routes, against the sandbox over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import Session, select
from starlette.applications import Starlette

from connectors.sandbox.consent import form_fields
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import session_scope
from dashboard.models import (
    AuditLog,
    Credential,
    Integration,
    Product,
    WebhookEvent,
    WebhookSubscription,
)
from dashboard.services import connect, shopify_webhooks, sync
from dashboard.services.credentials import load_credential
from dashboard.services.integrations import create_connect_link, create_integration
from dashboard.settings import get_settings
from tests.conftest import leaked_secrets, reset_caches
from tests.sandbox_server import apps, control_headers, running_sandbox

SHOP = "connect-test.myshopify.com"
HUB = "http://hub.test"


@pytest.fixture
async def hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    _throttles.clear()
    callback = {"shopify": [f"{HUB}/api/oauth/shopify/callback"]}  # the app's registered one
    with running_sandbox(seed=3, time_scale=50, redirect_uris=callback) as (base, sandbox_app):
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "sandbox-shopify-client-id")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_SECRET", apps(base).shopify_client_secret)
        monkeypatch.setenv("HUB_ENV", "test")
        reset_caches()
        from sqlmodel import SQLModel

        from dashboard.db import get_engine

        SQLModel.metadata.create_all(get_engine())
        httpx.post(
            f"{base}/_sandbox/shopify/shops",
            headers=control_headers(base),
            json={"shop": SHOP, "products": 30, "orders": 5, "customers": 3},
        )
        app = build_api(Starlette())
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=HUB
        ) as client:
            yield {"client": client, "base": base, "sandbox": sandbox_app}
        await sync.get_engine().wait()
        sync.set_engine(None)


def new_link() -> tuple[uuid.UUID, str]:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Connect", shop_domain=SHOP
        )
        _, token = create_connect_link(session=s, integration_id=integration.id)
        return integration.id, token


async def approve(hub: dict, token: str) -> str:
    """Merchant path: start link -> sandbox consent (approve) -> callback URL on the hub."""
    start = await hub["client"].get(f"/api/oauth/shopify/start?link={token}")
    assert start.status_code == 302
    authorize = urlparse(start.headers["location"])
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert params["redirect_uri"] == f"{HUB}/api/oauth/shopify/callback"
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
        assert "read_products" in consent.text
        answer = await browser.post(
            start.headers["location"].split("?")[0],
            data={**form_fields(consent.text), "decision": "approve"},
        )
    return answer.headers["location"].removeprefix(HUB)


async def test_merchant_connects_through_a_link(hub: dict) -> None:
    integration_id, token = new_link()
    callback = await approve(hub, token)
    result = await hub["client"].get(callback)
    assert result.status_code == 200 and "Connected" in result.text
    await sync.get_engine().wait()
    await asyncio.sleep(0.2)
    await sync.get_engine().wait()
    with session_scope() as s:
        integration = s.get(Integration, integration_id)
        assert integration.status in ("connected", "syncing")
        assert integration.shop_info["currency"] == "USD"
        stored = {c.kind: c for c in s.exec(select(Credential)).all()}
        # An expiring offline token with its refresh token, both encrypted at rest.
        assert set(stored) == {"access_token", "refresh_token"}
        assert stored["access_token"].expires_at is not None
        assert all(
            "shpat_" not in c.ciphertext and "shprt_" not in c.ciphertext for c in stored.values()
        )
        topics = {w.topic for w in s.exec(select(WebhookSubscription)).all()}
        assert {"PRODUCTS_UPDATE", "APP_UNINSTALLED"} <= topics
        assert len(s.exec(select(Product)).all()) == 30  # the first sync ran
    # The link is used up; replaying the callback is refused with a clear message.
    again = await hub["client"].get(f"/api/oauth/shopify/start?link={token}")
    assert again.status_code == 403 and "used already" in again.text
    replay = await hub["client"].get(callback)
    assert replay.status_code == 400 and "cannot be reused" in replay.text
    assert "Traceback" not in replay.text


async def test_no_secret_reaches_the_logs(hub: dict, caplog: pytest.LogCaptureFixture) -> None:
    """Connect, first sync, refresh and a webhook with every logger at DEBUG: neither the
    tokens, the app secret, the authorization code nor the link token appear in a log line."""
    caplog.set_level(logging.DEBUG)
    integration_id, token = new_link()
    callback = await approve(hub, token)
    code = parse_qs(urlparse(callback).query)["code"][0]
    assert (await hub["client"].get(callback)).status_code == 200
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()
    await sync.get_engine().request_sync(integration_id=integration_id, trigger="manual")
    await sync.get_engine().wait()
    assert (await hub["client"].post("/api/webhooks/shopify", **signed(PRODUCT_1))).status_code
    await asyncio.gather(*shopify_webhooks._tasks)
    with session_scope() as s:
        stored = [
            load_credential(session=s, integration_id=integration_id, kind=kind)
            for kind in ("access_token", "refresh_token")
        ]
    secrets = [c.secret for c in stored if c is not None] + [client_secret(), code, token]
    assert len(secrets) == 5
    assert leaked_secrets(caplog.records, secrets, client_origin=HUB) == []
    assert caplog.records, "the flow logs something, so the check above can fail"


async def test_forged_and_tampered_callbacks_are_refused(hub: dict) -> None:
    _, token = new_link()
    callback = await approve(hub, token)
    forged = re.sub(r"hmac=[0-9a-f]+", "hmac=" + "0" * 64, callback)
    response = await hub["client"].get(forged)
    assert response.status_code == 400 and "could not be verified" in response.text
    other_shop = callback.replace(f"shop={SHOP}", "shop=evil.myshopify.com")
    assert (await hub["client"].get(other_shop)).status_code == 400
    no_state = re.sub(r"state=[^&]+", "state=unknown", callback)
    assert (await hub["client"].get(no_state)).status_code == 400


async def test_start_needs_a_manager_or_a_valid_link(hub: dict) -> None:
    response = await hub["client"].get("/api/oauth/shopify/start?integration=" + str(uuid.uuid4()))
    assert response.status_code == 403 and "Sign in" in response.text
    response = await hub["client"].get("/api/oauth/shopify/start?link=nope")
    assert response.status_code == 403 and "not valid" in response.text


PRODUCT_1 = {"id": 1, "admin_graphql_api_id": "gid://shopify/Product/1"}


def client_secret() -> str:
    """The app secret the hub and its sandbox share (derived from the test's token)."""
    return str(get_settings().shopify_client_secret)


def signed(body: dict, **headers: str) -> dict:
    raw = json.dumps(body).encode()
    mac = hmac.new(client_secret().encode(), raw, hashlib.sha256)
    digest = base64.b64encode(mac.digest()).decode()
    return {
        "content": raw,
        "headers": {
            "X-Shopify-Topic": "products/update",
            "X-Shopify-Hmac-Sha256": digest,
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
            **headers,
        },
    }


async def test_webhooks_are_verified_deduplicated_and_applied(hub: dict) -> None:
    integration_id, token = new_link()
    await hub["client"].get(await approve(hub, token))
    # The first sync starts from a background task: let it start, then finish, so it
    # cannot re-store a product after the delete webhook below.
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()
    client = hub["client"]
    gid = "gid://shopify/Product/1000003"
    request = signed({"id": 1000003, "admin_graphql_api_id": gid})
    first = await client.post("/api/webhooks/shopify", **request)
    duplicate = await client.post("/api/webhooks/shopify", **request)
    assert first.status_code == duplicate.status_code == 200
    await asyncio.gather(*shopify_webhooks._tasks)

    forged = signed(PRODUCT_1)
    forged["headers"]["X-Shopify-Hmac-Sha256"] = base64.b64encode(b"x" * 32).decode()
    assert (await client.post("/api/webhooks/shopify", **forged)).status_code == 401
    assert (
        await client.post("/api/webhooks/shopify", content=b"", headers={"X-Shopify-Topic": "x"})
    ).status_code == 400
    huge = signed({"pad": "x" * 1_100_000})
    assert (await client.post("/api/webhooks/shopify", **huge)).status_code == 413

    deleted = signed({"id": 1000004}, **{"X-Shopify-Topic": "products/delete"})
    assert (await client.post("/api/webhooks/shopify", **deleted)).status_code == 200
    shop_object = {"id": 548380009, "domain": SHOP, "myshopify_domain": SHOP}
    uninstalled = signed(shop_object, **{"X-Shopify-Topic": "app/uninstalled"})
    # The hub's token still works: the shop has the app, whatever the webhook says.
    assert (await client.post("/api/webhooks/shopify", **uninstalled)).status_code == 200
    await asyncio.gather(*shopify_webhooks._tasks)
    with session_scope() as s:
        assert s.get(Integration, integration_id).status != "disconnected"
    # The merchant removes the app; its token is refused from now on.
    httpx.post(
        f"{hub['base']}/_sandbox/shopify/shops/{SHOP}/revoke", headers=control_headers(hub["base"])
    ).raise_for_status()
    uninstalled = signed(shop_object, **{"X-Shopify-Topic": "app/uninstalled"})
    assert (await client.post("/api/webhooks/shopify", **uninstalled)).status_code == 200
    await asyncio.gather(*shopify_webhooks._tasks)

    with session_scope() as s:
        events = s.exec(select(WebhookEvent)).all()
        assert len(events) == 4  # the duplicate was not stored twice
        assert sorted(e.status for e in events) == ["ignored", *["processed"] * 3]
        product = s.exec(select(Product).where(Product.external_id == gid)).one()
        assert product.deleted_at is None
        gone = s.exec(
            select(Product).where(Product.external_id == "gid://shopify/Product/1000004")
        ).one()
        assert gone.deleted_at is not None
        integration = s.get(Integration, integration_id)
        assert integration.status == "disconnected"
        assert s.exec(select(Credential)).all() == []  # the token is destroyed
        assert s.exec(select(AuditLog).where(AuditLog.action == "integration.uninstalled")).one()
