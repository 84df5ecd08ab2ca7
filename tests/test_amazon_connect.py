"""Connecting an Amazon seller through the hub's routes against the sandbox's Seller Central
and LWA: the merchant path, reconnect in place, and every refusal with a readable page."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import Session, select
from starlette.applications import Starlette

from connectors.amazon.client import BUCKETS
from connectors.sandbox.consent import form_fields
from dashboard.api import build_api
from dashboard.db import session_scope
from dashboard.models import AuditLog, Credential, Integration, Order, Product, Role
from dashboard.services import connect, sync
from dashboard.services.auth import create_session, create_user
from dashboard.services.credentials import load_credential
from dashboard.services.integrations import create_connect_link, create_integration
from tests.conftest import leaked_secrets, reset_caches
from tests.sandbox_server import apps, control_headers, running_sandbox

HUB = "http://hub.test"
AMAZON_APP: dict[str, str] = {}  # the running sandbox's app credentials (the hub's too)
SELLER = "A4CONNECTSELLER"
OTHER = "A5OTHERSELLER00"
US, MX = "ATVPDKIKX0DER", "A1AM78C64UM0Y8"


@pytest.fixture
async def hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    BUCKETS.buckets.clear()
    callback = {"amazon": [f"{HUB}/api/oauth/amazon/callback"]}  # the app's registered one
    with running_sandbox(seed=9, time_scale=50, redirect_uris=callback) as (base, _app):
        AMAZON_APP.update(
            app_id=apps(base).amazon_app_id,
            client_id=apps(base).amazon_client_id,
            client_secret=apps(base).amazon_client_secret,
        )
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_AMAZON_BASE_URL", f"{base}/amazon")
        monkeypatch.setenv("HUB_AMAZON_APP_ID", AMAZON_APP["app_id"])
        monkeypatch.setenv("HUB_AMAZON_CLIENT_ID", AMAZON_APP["client_id"])
        monkeypatch.setenv("HUB_AMAZON_CLIENT_SECRET", AMAZON_APP["client_secret"])
        monkeypatch.setenv("HUB_ENV", "test")
        reset_caches()
        from sqlmodel import SQLModel

        from dashboard.db import get_engine

        SQLModel.metadata.create_all(get_engine())
        for seller in (SELLER, OTHER):
            httpx.post(
                f"{base}/_sandbox/amazon/sellers", headers=control_headers(base),
                json={"selling_partner_id": seller, "marketplaces": [US], "orders": 40,
                      "listings": 20, "fba_items": 5},
            ).raise_for_status()  # fmt: skip
        app = build_api(Starlette())
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=HUB
        ) as client:
            yield {"client": client, "base": base}
        await asyncio.gather(*connect._background)
        await sync.get_engine().wait()
        sync.set_engine(None)
    BUCKETS.buckets.clear()


def new_link(
    marketplaces: tuple[str, ...] = (US, MX), streams: dict[str, int] | None = None
) -> tuple[uuid.UUID, str]:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="amazon", display_name="Seller", region="na",
            marketplaces=list(marketplaces), streams=streams or {"orders": 10},
        )  # fmt: skip
        _, token = create_connect_link(session=s, integration_id=integration.id)
        return integration.id, token


async def consent(
    hub: dict, token: str, seller: str = SELLER, decision: str = "approve", start_query: str = ""
) -> str:
    """Merchant path: link -> Seller Central consent (Confirm, or ``decision``) -> the hub's
    callback URL. ``start_query``: another start (a manager's ``integration=...``)."""
    start = await hub["client"].get(f"/api/oauth/amazon/start?{start_query or f'link={token}'}")
    assert start.status_code == 302
    location = start.headers["location"]
    params = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
    consent_page = "/amazon/sellercentral/sellercentral.amazon.com/apps/authorize/consent"
    assert location.startswith(f"{hub['base']}{consent_page}")
    assert params["application_id"] == AMAZON_APP["app_id"] and "version" not in params
    assert params["redirect_uri"] == f"{HUB}/api/oauth/amazon/callback"
    async with httpx.AsyncClient() as browser:
        page = await browser.get(location)
        assert page.status_code == 200 and "Authorize" in page.text
        answer = await browser.post(
            location,
            data={**form_fields(page.text), "decision": decision, "selling_partner_id": seller},
        )
    return answer.headers["location"].removeprefix(HUB)


async def test_merchant_connects_a_seller_through_a_link(hub: dict) -> None:
    integration_id, token = new_link()
    callback = await consent(hub, token)
    result = await hub["client"].get(callback)
    assert result.status_code == 200 and "Connected" in result.text, result.text
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()
    with session_scope() as s:
        integration = s.get(Integration, integration_id)
        assert integration.selling_partner_id == SELLER
        # MX was asked for, but the seller only takes part in the US marketplace.
        assert integration.marketplaces == [US]
        assert integration.shop_info["name"].startswith("Sandbox Seller")
        stored = {c.kind: c for c in s.exec(select(Credential)).all()}
        assert {"refresh_token", "access_token"} <= set(stored)
        assert all(
            "Atzr|" not in c.ciphertext and "Atza|" not in c.ciphertext for c in stored.values()
        )
        assert len(s.exec(select(Order)).all()) == 40  # the first sync ran
    replay = await hub["client"].get(callback)
    assert replay.status_code == 400 and "cannot be reused" in replay.text


async def test_no_secret_reaches_the_logs(hub: dict, caplog: pytest.LogCaptureFixture) -> None:
    """Connect and the first sync (listings report included) with every logger at DEBUG:
    neither the tokens, the app secret, the authorization code, the link token nor a report
    document's pre-signed URL appear in a log line."""
    caplog.set_level(logging.DEBUG)
    integration_id, token = new_link((US,), streams={"orders": 10, "listings": 60, "inventory": 30})
    callback = await consent(hub, token)
    code = parse_qs(urlparse(callback).query)["spapi_oauth_code"][0]
    assert (await hub["client"].get(callback)).status_code == 200
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()
    with session_scope() as s:
        stored = [
            load_credential(session=s, integration_id=integration_id, kind=kind)
            for kind in ("access_token", "refresh_token")
        ]
        assert s.exec(select(Product)).first() is not None  # the report was downloaded
    secrets = [c.secret for c in stored if c is not None]
    secrets += [AMAZON_APP["client_secret"], code, token]
    assert len(secrets) == 5
    assert leaked_secrets(caplog.records, secrets, client_origin=HUB) == []
    downloads = [m for r in caplog.records if "/amazon/documents/" in (m := r.getMessage())]
    # httpx's line redacts the pre-signed query; the hub's own request line has no query.
    assert downloads and all(
        "signature=REDACTED" in line or "?" not in line for line in downloads
    ), downloads
    assert any(r.name == "hub.platform" for r in caplog.records if "/documents/" in r.getMessage())


async def test_reconnect_keeps_the_integration_and_refuses_another_seller(hub: dict) -> None:
    integration_id, token = new_link((US,))
    assert (await hub["client"].get(await consent(hub, token))).status_code == 200
    with session_scope() as s:
        _, again = create_connect_link(
            session=s, integration_id=integration_id, purpose="reconnect"
        )
    other = await hub["client"].get(await consent(hub, again, seller=OTHER))
    assert other.status_code == 400 and "different selling account" in other.text
    with session_scope() as s:
        _, third = create_connect_link(
            session=s, integration_id=integration_id, purpose="reconnect"
        )
    same = await hub["client"].get(await consent(hub, third))
    assert same.status_code == 200
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == 1
        assert s.get(Integration, integration_id).selling_partner_id == SELLER


async def test_refusals_render_a_page_that_says_what_to_do(hub: dict) -> None:
    _, token = new_link()
    callback = await consent(hub, token)
    unknown = re.sub(r"state=[^&]+", "state=forged", callback)
    response = await hub["client"].get(unknown)
    assert response.status_code == 400 and "unknown" in response.text
    no_code = re.sub(r"&?spapi_oauth_code=[^&]+", "", callback)
    response = await hub["client"].get(no_code)
    assert response.status_code == 400 and "no authorization code" in response.text
    # That state is used now; a fresh link and an error Amazon put on the redirect.
    _, token = new_link()
    start = await hub["client"].get(f"/api/oauth/amazon/start?link={token}")
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    md1000 = await hub["client"].get(f"/api/oauth/amazon/callback?state={state}&error=MD1000")
    assert md1000.status_code == 400 and "HUB_AMAZON_DRAFT_APP" in md1000.text
    # A code that is used already (or older than five minutes) is refused by LWA.
    _, token = new_link()
    callback = await consent(hub, token)
    code = parse_qs(urlparse(callback).query)["spapi_oauth_code"][0]
    async with httpx.AsyncClient() as lwa:
        used = await lwa.post(
            f"{hub['base']}/amazon/lwa/auth/o2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": f"{HUB}/api/oauth/amazon/callback",
                "client_id": AMAZON_APP["client_id"],
                "client_secret": AMAZON_APP["client_secret"],
            },
        )
        assert used.status_code == 200
    late = await hub["client"].get(callback)
    assert late.status_code == 400 and "five minutes" in late.text
    for page in (response, md1000, late):
        assert "Traceback" not in page.text and "Atz" not in page.text
    bad_link = await hub["client"].get("/api/oauth/amazon/start?link=nope")
    assert bad_link.status_code == 403


async def test_a_cancel_on_the_consent_page_comes_back_as_connection_cancelled(hub: dict) -> None:
    """Cancel on Seller Central: Login with Amazon's access_denied answer brings the browser back
    to the hub, which says nothing was connected and shows the way back."""
    integration_id, token = new_link()
    callback = await consent(hub, token, decision="deny")
    query = parse_qs(urlparse(callback).query)
    assert query["error"] == ["access_denied"] and "spapi_oauth_code" not in query
    page = await hub["client"].get(callback)
    assert page.status_code == 200
    assert "Connection cancelled" in page.text and "nothing was connected" in page.text
    assert "Open the link you were sent again" in page.text  # the merchant's way back
    with session_scope() as s:
        integration = s.get(Integration, integration_id)
        assert integration is not None and integration.status == "pending"
        assert s.exec(select(Credential)).all() == []
        (entry,) = s.exec(
            select(AuditLog).where(AuditLog.action == "integration.consent_cancelled")
        ).all()
        assert entry.actor == "merchant" and entry.target == str(integration_id)
    again = await hub["client"].get(callback)  # the state was single-use all the same
    assert again.status_code == 400

    # A manager who cancels is led back to the integration's page.
    with session_scope() as s:
        manager, _ = create_user(session=s, email="max@example.com", role=Role.MANAGER)
        hub["client"].cookies.set("hub_session", create_session(session=s, user=manager))
    callback = await consent(hub, "", decision="deny", start_query=f"integration={integration_id}")
    page = await hub["client"].get(callback)
    assert "Connection cancelled" in page.text and "Back to Seller" in page.text
    assert f"{HUB}/integrations/{integration_id}" in page.text
    with session_scope() as s:
        actors = s.exec(
            select(AuditLog.actor).where(AuditLog.action == "integration.consent_cancelled")
        ).all()
        assert sorted(actors) == ["max@example.com", "merchant"]
