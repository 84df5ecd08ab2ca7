"""Installs that Shopify starts (the App Store, the merchant's admin), through the hub's real
routes, against the sandbox over HTTP: the sandbox plays Shopify's admin and signs the app
URL's query with the app's secret, as Shopify does."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from reflex.istate.data import RouterData
from sqlmodel import Session, SQLModel, select
from starlette.applications import Starlette

from connectors.shopify.auth import query_signature
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import AuditLog, Credential, Incident, Integration, Role, StreamConfig
from dashboard.pages.settings import SettingsState
from dashboard.services import connect, incident_sweeps, sync
from dashboard.services.auth import create_session, create_user
from dashboard.services.integrations import create_integration
from dashboard.settings import get_settings
from dashboard.state.wizard import WizardState
from tests.conftest import reset_caches
from tests.sandbox_server import apps, control_headers, running_sandbox, shopify_consent

SHOP = "admin-install.myshopify.com"
HUB = "http://hub.test"
APP_URL = f"{HUB}/api/shopify/app"


@pytest.fixture
async def hub(session: Session, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict]:
    _throttles.clear()
    callback = {"shopify": [f"{HUB}/api/oauth/shopify/callback"]}
    with running_sandbox(seed=5, time_scale=50, redirect_uris=callback) as (base, _):
        monkeypatch.setenv("HUB_SANDBOX", "0")
        monkeypatch.setenv("HUB_PUBLIC_URL", HUB)
        monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "sandbox-shopify-client-id")
        monkeypatch.setenv("HUB_SHOPIFY_CLIENT_SECRET", apps(base).shopify_client_secret)
        monkeypatch.setenv("HUB_ENV", "test")
        reset_caches()
        SQLModel.metadata.create_all(get_engine())
        httpx.post(
            f"{base}/_sandbox/shopify/shops",
            headers=control_headers(base),
            json={"shop": SHOP, "products": 12, "orders": 3, "customers": 2},
        ).raise_for_status()
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        app = build_api(Starlette())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=HUB
        ) as client:
            yield {"client": client, "base": base}
        await asyncio.gather(*connect._background)
        await sync.get_engine().wait()
        sync.set_engine(None)


def open_app_from_admin(hub: dict, shop: str = SHOP) -> str:
    """The merchant clicks the app in the sandbox's Shopify admin: the app URL, signed."""
    response = httpx.get(
        f"{hub['base']}/_sandbox/shopify/shops/{shop}/open_app",
        params={"app_url": APP_URL},
        headers=control_headers(hub["base"]),
    )
    assert response.status_code == 302, response.text
    return response.headers["location"].removeprefix(HUB)


async def install_from_admin(hub: dict) -> httpx.Response:
    """Admin -> app URL -> consent page (Install app) -> callback: the page the merchant sees."""
    started = await hub["client"].get(open_app_from_admin(hub))
    # No page of the hub's asks for anything: straight on to Shopify's consent.
    assert started.status_code == 302, started.text
    consent_url, _, query = started.headers["location"].partition("?")
    params = dict(urllib.parse.parse_qsl(query))
    assert params["redirect_uri"] == f"{HUB}/api/oauth/shopify/callback"
    async with httpx.AsyncClient() as browser:
        answer = await shopify_consent(browser, consent_url, params)
    assert answer.status_code == 302, answer.text
    return await hub["client"].get(answer.headers["location"].removeprefix(HUB))


async def test_an_install_from_the_shopify_admin_connects_with_the_admins_defaults(
    hub: dict,
) -> None:
    with session_scope() as s:
        connect.set_install_defaults(
            session=s, streams={"products": 30, "orders": 10}, actor="admin@example.com"
        )
    result = await install_from_admin(hub)
    assert result.status_code == 200
    assert "Connected" in result.text and "You can close this page" in result.text
    with session_scope() as s:
        integration = s.exec(select(Integration).where(Integration.shop_domain == SHOP)).one()
        assert integration.status in ("connected", "syncing")
        assert integration.account_key == f"shopify:{SHOP}"
        streams = {
            c.stream: c.interval_minutes
            for c in s.exec(
                select(StreamConfig).where(StreamConfig.integration_id == integration.id)
            )
        }
        assert streams == {"products": 30, "orders": 10}
        kinds = {
            c.kind
            for c in s.exec(select(Credential).where(Credential.integration_id == integration.id))
        }
        assert kinds == {"access_token", "refresh_token"}
        connected = s.exec(select(AuditLog).where(AuditLog.action == "integration.connected")).one()
        assert connected.actor == "merchant"

    # Opening the app again later: the merchant is told it is connected, nothing new is made.
    again = await hub["client"].get(open_app_from_admin(hub))
    assert again.status_code == 200 and "Already connected" in again.text
    with session_scope() as s:
        assert len(s.exec(select(Integration)).all()) == 1


async def test_an_install_from_the_admin_reconnects_the_integration_holding_the_shop(
    hub: dict,
) -> None:
    with session_scope() as s:
        existing = create_integration(
            session=s, platform="shopify", display_name="Kept history", shop_domain=SHOP
        )
        existing.status = "needs_reauth"
        existing.account_key = f"shopify:{SHOP}"
        s.add(existing)
        existing_id = existing.id
    result = await install_from_admin(hub)
    assert result.status_code == 200 and "Kept history" in result.text
    with session_scope() as s:
        (only,) = s.exec(select(Integration)).all()
        assert only.id == existing_id and only.status in ("connected", "syncing")


async def test_without_admin_defaults_an_install_gets_the_platform_streams(hub: dict) -> None:
    result = await install_from_admin(hub)
    assert "Connected" in result.text
    with session_scope() as s:
        names = {c.stream for c in s.exec(select(StreamConfig))}
    assert names == {"products", "inventory", "orders", "customers"}


def signed_query(**params: str) -> str:
    secret = str(get_settings().shopify_client_secret)
    params["hmac"] = query_signature(params, secret)
    return urllib.parse.urlencode(params)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        # Signed with another secret (a forger who knows the scheme, not the secret).
        (
            "host=YQ&shop=admin-install.myshopify.com&timestamp={now}&hmac=" + "ab" * 32,
            "could not be verified",
        ),
        ("host=YQ&shop=admin-install.myshopify.com&timestamp={now}&hmac=%C3%A9t%C3%A9", "verified"),
        ("shop=admin-install.myshopify.com", "could not be verified"),
        ("", "could not be verified"),
    ],
)
async def test_unsigned_or_forged_app_urls_are_refused(hub: dict, query: str, says: str) -> None:
    response = await hub["client"].get(f"/api/shopify/app?{query.format(now=int(time.time()))}")
    assert response.status_code == 401
    assert says in response.text and "Open the app again from your Shopify admin" in response.text
    assert "Traceback" not in response.text
    with session_scope() as s:
        assert s.exec(select(Integration)).all() == []


async def test_an_old_or_hostile_signed_app_url_is_refused(hub: dict) -> None:
    stale = signed_query(host="YQ", shop=SHOP, timestamp=str(int(time.time()) - 600))
    response = await hub["client"].get(f"/api/shopify/app?{stale}")
    assert response.status_code == 401 and "too old" in response.text
    hostile = signed_query(host="YQ", shop="evil.example.com", timestamp=str(int(time.time())))
    response = await hub["client"].get(f"/api/shopify/app?{hostile}")
    assert response.status_code == 401 and "invalid shop" in response.text
    with session_scope() as s:
        assert s.exec(select(Integration)).all() == []


def settings_signed_in(session: Session, role: Role) -> SettingsState:
    user, _ = create_user(session=session, email=f"{role.value}@example.com", role=role)
    token = create_session(session=session, user=user)
    session.commit()
    state = SettingsState(_reflex_internal_init=True)
    state.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    return state


async def test_an_admin_chooses_the_defaults_in_settings_and_a_manager_cannot(
    session: Session,
) -> None:
    SQLModel.metadata.create_all(get_engine())
    admin = settings_signed_in(session, Role.ADMIN)
    await SettingsState.load_settings.fn(admin)
    shown = {row["stream"]: row["interval"] for row in admin.install_streams}
    assert shown == {"products": "15", "inventory": "15", "orders": "5", "customers": "60"}
    form = {"products": "45", "inventory": "", "orders": "10", "customers": ""}
    await SettingsState.save_install_defaults.fn(admin, form)
    shown = {row["stream"]: row["interval"] for row in admin.install_streams}
    assert shown == {"products": "45", "inventory": "", "orders": "10", "customers": ""}
    # Nonsense is refused with a message, and the saved choice stays.
    await SettingsState.save_install_defaults.fn(admin, {"products": "0"})
    await SettingsState.save_install_defaults.fn(admin, {"products": "soon"})
    with session_scope() as s:
        assert connect.install_defaults(session=s) == {"products": 45, "orders": 10}

    manager = settings_signed_in(session, Role.MANAGER)
    await SettingsState.save_install_defaults.fn(manager, {"products": "1"})
    with session_scope() as s:
        assert connect.install_defaults(session=s) == {"products": 45, "orders": 10}


async def test_a_refresh_token_near_its_90_days_opens_an_incident_until_a_refresh(
    hub: dict,
) -> None:
    """The admin is warned 14 days (the default) ahead; a sync refreshes the token through the
    sandbox's token endpoint, and the next sweep resolves the incident."""
    assert "Connected" in (await install_from_admin(hub)).text
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()
    now = datetime.now(UTC)
    with session_scope() as s:
        integration = s.exec(select(Integration)).one()
        stored = {
            c.kind: c
            for c in s.exec(select(Credential).where(Credential.integration_id == integration.id))
        }
        assert stored["refresh_token"].expires_at is not None  # Shopify said 90 days
        assert stored["refresh_token"].expires_at > now + timedelta(days=89)
        assert incident_sweeps.sweep_expiring_refresh_tokens(session=s) == 0
        # 80 days later, still not refreshed (say the integration was paused).
        stored["refresh_token"].expires_at = now + timedelta(days=10, hours=1)
        s.add(stored["refresh_token"])
    with session_scope() as s:
        assert incident_sweeps.sweep_expiring_refresh_tokens(session=s) == 1
        assert incident_sweeps.sweep_expiring_refresh_tokens(session=s) == 1  # told once
    with session_scope() as s:
        (incident,) = s.exec(select(Incident)).all()
        assert incident.status == "open" and incident.occurrences == 1
        assert incident.title == "Shopify access ends in 10 days unless the token is refreshed"
        assert "run a sync" in incident.advice
        # The access token ran out (an hour): the next call refreshes the pair.
        access = s.exec(select(Credential).where(Credential.kind == "access_token")).one()
        access.expires_at = now - timedelta(minutes=1)
        s.add(access)
        integration_id = incident.integration_id
    await sync.get_engine().request_sync(integration_id=integration_id, trigger="manual")
    await sync.get_engine().wait()
    with session_scope() as s:
        refreshed = s.exec(select(Credential).where(Credential.kind == "refresh_token")).one()
        assert refreshed.refreshed_at is not None
        assert refreshed.expires_at > now + timedelta(days=89)
        assert incident_sweeps.sweep_expiring_refresh_tokens(session=s) == 0
    with session_scope() as s:
        (incident,) = s.exec(select(Incident)).all()
        assert incident.status == "resolved" and incident.resolution == "the token was refreshed"


async def test_a_refresh_token_past_its_90_days_says_access_ended(session: Session) -> None:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name="Paused", shop_domain=SHOP
        )
        integration.status = "paused"
        s.add(integration)
        s.flush()
        s.add(
            Credential(
                integration_id=integration.id, kind="refresh_token", ciphertext="x", key_id="k",
                created_at=datetime.now(UTC) - timedelta(days=91),
            )
        )  # fmt: skip
    with session_scope() as s:
        assert incident_sweeps.sweep_expiring_refresh_tokens(session=s) == 1
        (incident,) = s.exec(select(Incident)).all()
        assert incident.title.startswith("Shopify access has ended")
        assert "reconnect it from the shop's Shopify admin" in incident.advice


# --- custom distribution: an integration with its own app ----------------------------------

CUSTOM_SHOP = "custom-merchant.myshopify.com"


def webhook_signed_with(secret: str, shop: str) -> dict:
    body = json.dumps({"id": 1, "admin_graphql_api_id": "gid://shopify/Product/1"}).encode()
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "content": body,
        "headers": {
            "X-Shopify-Topic": "products/update",
            "X-Shopify-Hmac-Sha256": digest,
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    }


async def test_a_custom_app_entered_in_the_wizard_serves_oauth_refresh_and_webhooks(
    hub: dict,
) -> None:
    base = hub["base"]
    httpx.post(
        f"{base}/_sandbox/shopify/shops", headers=control_headers(base),
        json={"shop": CUSTOM_SHOP, "products": 4, "orders": 1, "customers": 1},
    ).raise_for_status()  # fmt: skip
    made = httpx.post(
        f"{base}/_sandbox/shopify/shops/{CUSTOM_SHOP}/custom_app", headers=control_headers(base)
    )
    custom_id, custom_secret = made.json()["client_id"], made.json()["client_secret"]

    # The manager enters the merchant's app in the wizard, then connects now.
    with session_scope() as s:
        user, _ = create_user(session=s, email="manager@example.com", role=Role.MANAGER)
        cookie = create_session(session=s, user=user)
    wizard = WizardState(_reflex_internal_init=True)
    wizard.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={cookie}"}})
    await WizardState.reset_wizard.fn(wizard)
    await WizardState.choose_platform.fn(wizard, "shopify")
    await WizardState.set_name.fn(wizard, "Custom merchant")
    await WizardState.set_shop_domain.fn(wizard, CUSTOM_SHOP)
    await WizardState.set_app_client_id.fn(wizard, custom_id)
    await WizardState.set_app_client_secret.fn(wizard, custom_secret)
    await WizardState.go_to.fn(wizard, 3)
    await WizardState.connect_now.fn(wizard)
    assert wizard.error == "" and wizard.own_app_saved
    integration_id = uuid.UUID(wizard.created_id)
    with session_scope() as s:
        rows = s.exec(select(Credential).where(Credential.integration_id == integration_id)).all()
        assert {r.kind for r in rows} == {"app_client_id", "app_client_secret"}
        assert all(custom_secret not in r.ciphertext for r in rows)  # encrypted

    hub["client"].cookies.set("hub_session", cookie)
    started = await hub["client"].get(f"/api/oauth/shopify/start?integration={integration_id}")
    consent_url, _, query = started.headers["location"].partition("?")
    params = dict(urllib.parse.parse_qsl(query))
    assert params["client_id"] == custom_id  # the merchant's own app, not the hub's
    async with httpx.AsyncClient() as browser:
        answer = await shopify_consent(browser, consent_url, params)
    back = await hub["client"].get(answer.headers["location"].removeprefix(HUB))
    assert back.status_code == 302 and back.headers["location"] == f"/integrations/{integration_id}"
    await asyncio.gather(*connect._background)
    await sync.get_engine().wait()
    with session_scope() as s:
        assert s.get(Integration, integration_id).status in ("connected", "syncing")

    # Webhooks for that shop verify with its app's secret; the default app still works too.
    client = hub["client"]
    own = await client.post(
        "/api/webhooks/shopify", **webhook_signed_with(custom_secret, CUSTOM_SHOP)
    )
    assert own.status_code == 200
    default = str(get_settings().shopify_client_secret)
    assert (
        await client.post("/api/webhooks/shopify", **webhook_signed_with(default, CUSTOM_SHOP))
    ).status_code == 200
    # The custom secret is no key to another shop's webhooks.
    assert (
        await client.post("/api/webhooks/shopify", **webhook_signed_with(custom_secret, SHOP))
    ).status_code == 401

    # The refresh goes through the merchant's app too (the sandbox accepts nothing else for it).
    with session_scope() as s:
        access = s.exec(
            select(Credential).where(
                Credential.integration_id == integration_id, Credential.kind == "access_token"
            )
        ).one()
        access.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        s.add(access)
    await sync.get_engine().request_sync(integration_id=integration_id, trigger="manual")
    await sync.get_engine().wait()
    with session_scope() as s:
        refreshed = s.exec(
            select(Credential).where(
                Credential.integration_id == integration_id, Credential.kind == "refresh_token"
            )
        ).one()
        assert refreshed.refreshed_at is not None
        assert s.get(Integration, integration_id).status in ("connected", "syncing")

    # Opening the custom app from the merchant's admin: signed with its secret, recognised.
    opened = httpx.get(
        f"{base}/_sandbox/shopify/shops/{CUSTOM_SHOP}/open_app",
        params={"app_url": APP_URL, "client_id": custom_id},
        headers=control_headers(base),
    )
    again = await client.get(opened.headers["location"].removeprefix(HUB))
    assert again.status_code == 200 and "Already connected" in again.text
