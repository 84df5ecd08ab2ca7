"""A sandbox with a state file remembers, across its own restarts, what a real platform does:
installed apps and their tokens, uninstalls, webhook subscriptions, the shops and sellers it
made. Each test stops one sandbox and starts another on the same file."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.sandbox.access import sandbox_apps
from connectors.sandbox.app import create_sandbox_app
from connectors.sandbox.installer import install_amazon, install_shopify
from tests.sandbox_server import running_sandbox
from tests.sandbox_shopify_helpers import consent

SHOP = "kept.myshopify.com"
GONE = "uninstalled.myshopify.com"
SELLER = "A1KEPTSELLER01"
SHOP_QUERY = "{ shop { name } productsCount(limit: null) { count } }"
SUBSCRIPTIONS = "{ webhookSubscriptions(first: 10) { nodes { id topic uri } } }"
SUBSCRIBE = """mutation { webhookSubscriptionCreate(topic: PRODUCTS_UPDATE,
  webhookSubscription: {uri: "http://hub.invalid/api/webhooks/shopify"})
  { webhookSubscription { id } userErrors { message } } }"""
PARTICIPATIONS = "/amazon/sp/na/sellers/v1/marketplaceParticipations"
LWA = "/amazon/lwa/auth/o2/token"
# One control token across restarts, as the hub keeps its own: the same apps' secrets.
TOKEN = "test-control-token"
APPS = sandbox_apps(TOKEN)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHOPIFY_APP = {"client_id": APPS.shopify_client_id, "client_secret": APPS.shopify_client_secret}
AMAZON_CLIENT = {"client_id": APPS.amazon_client_id, "client_secret": APPS.amazon_client_secret}


def kept(state: Path) -> Any:
    """The sandbox on ``state``, with the same token at each start."""
    return running_sandbox(seed=7, state_file=state, control_token=TOKEN)


def control(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers=AUTH)


def gql(client: httpx.Client, token: str, query: str, shop: str = SHOP) -> httpx.Response:
    return client.post(
        f"/shopify/{shop}/admin/api/2026-10/graphql.json",
        json={"query": query},
        headers={"X-Shopify-Access-Token": token},
    )


def refresh_shopify(client: httpx.Client, refresh_token: str, shop: str = SHOP) -> httpx.Response:
    return client.post(
        f"/shopify/{shop}/admin/oauth/access_token",
        json={**SHOPIFY_APP, "grant_type": "refresh_token", "refresh_token": refresh_token},
    )


def lwa_refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post(
        LWA, data={**AMAZON_CLIENT, "grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def test_a_restarted_shopify_keeps_the_apps_installed_on_it(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    with (
        running_sandbox(seed=7, state_file=state, control_token=TOKEN) as (base, _),
        httpx.Client(base_url=base, headers=AUTH) as c,
    ):
        created = c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 30})
        assert created.status_code == 201
        offline = install_shopify(c, SHOP, APPS)["access_token"]
        expiring = install_shopify(c, SHOP, APPS, expiring=True)
        subscribed = gql(c, offline, SUBSCRIBE).json()["data"]["webhookSubscriptionCreate"]
        gone = install_shopify(c, GONE, APPS)["access_token"]
        assert c.post(f"/_sandbox/shopify/shops/{GONE}/revoke").status_code == 200
        truth = c.get(f"/_sandbox/shopify/shops/{SHOP}/truth").json()["streams"]

    with (
        running_sandbox(seed=7, state_file=state, control_token=TOKEN) as (base, _),
        httpx.Client(base_url=base, headers=AUTH) as c,
    ):
        shop = gql(c, offline, SHOP_QUERY)
        assert shop.status_code == 200 and shop.json()["data"]["productsCount"]["count"] == 30
        # The same shop: its data grows again from the seed and its creation parameters.
        assert c.get(f"/_sandbox/shopify/shops/{SHOP}/truth").json()["streams"] == truth
        assert gql(c, expiring["access_token"], SHOP_QUERY).status_code == 200
        refreshed = refresh_shopify(c, expiring["refresh_token"])
        assert refreshed.status_code == 200
        assert gql(c, refreshed.json()["access_token"], SHOP_QUERY).status_code == 200
        listed = gql(c, offline, SUBSCRIPTIONS).json()["data"]["webhookSubscriptions"]["nodes"]
        assert [(s["id"], s["topic"]) for s in listed] == [
            (subscribed["webhookSubscription"]["id"], "PRODUCTS_UPDATE")
        ]
        # The uninstall is remembered too: its token stays refused.
        assert gql(c, gone, SHOP_QUERY, shop=GONE).status_code == 401

    # The refresh token used above was spent: a third start refuses it, and keeps the new one.
    with (
        running_sandbox(seed=7, state_file=state, control_token=TOKEN) as (base, _),
        httpx.Client(base_url=base, headers=AUTH) as c,
    ):
        assert refresh_shopify(c, expiring["refresh_token"]).json()["error"] == "invalid_grant"
        assert refresh_shopify(c, refreshed.json()["refresh_token"]).status_code == 200


def test_a_restarted_amazon_keeps_the_sellers_authorization(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    with (
        running_sandbox(seed=7, state_file=state, control_token=TOKEN) as (base, app),
        httpx.Client(base_url=base, headers=AUTH) as c,
    ):
        created = c.post(
            "/_sandbox/amazon/sellers",
            json={"selling_partner_id": SELLER, "orders": 40, "listings": 25, "fba_items": 10},
        )
        assert created.status_code == 201
        refresh_token = install_amazon(c, SELLER, APPS)
        access = lwa_refresh(c, refresh_token).json()["access_token"]
        made_at = app.state.sandbox.extras["amazon"].sellers[SELLER].created
        # A second seller, who revokes the app.
        c.post("/_sandbox/amazon/sellers", json={"selling_partner_id": "A1REVOKEDSELLER"})
        revoked = install_amazon(c, "A1REVOKEDSELLER", APPS)
        assert c.post("/_sandbox/amazon/sellers/A1REVOKEDSELLER/revoke").status_code == 200

    with (
        running_sandbox(seed=7, state_file=state, control_token=TOKEN) as (base, app),
        httpx.Client(base_url=base, headers=AUTH) as c,
    ):
        token = lwa_refresh(c, refresh_token)
        assert token.status_code == 200
        fresh = c.get(PARTICIPATIONS, headers={"x-amz-access-token": token.json()["access_token"]})
        assert fresh.status_code == 200 and fresh.json()["payload"]
        kept = c.get(PARTICIPATIONS, headers={"x-amz-access-token": access})
        assert kept.status_code == 200  # the access token keeps the rest of its hour
        # The same seller: same creation time, so the same order history.
        assert app.state.sandbox.extras["amazon"].sellers[SELLER].created == made_at
        assert lwa_refresh(c, revoked).json()["error"] == "invalid_grant"


async def test_expiries_keep_their_platform_time_and_the_stop_counts(tmp_path: Path) -> None:
    """A 1-hour token issued 20 platform minutes before the sandbox stopped has 40 minutes
    left after the restart: the platform clock ran on while it was stopped, as a real one
    does, at the sandbox's time scale."""
    state = tmp_path / "sandbox-state.json"
    first = create_sandbox_app(control_token=TOKEN, seed=7, time_scale=50, state_file=state)
    async with _client(first) as c:
        token = (await _install(c, SHOP, expiring="1"))["access_token"]
    shopify = first.state.sandbox.extras["shopify"]
    left = shopify.tokens[token].expires_at - first.state.sandbox.clock.monotonic()
    assert left == pytest.approx(3600, abs=60)
    # The sandbox stopped 24 real seconds ago: 1,200 platform seconds at a time scale of 50.
    saved = json.loads(state.read_text())
    saved["clock"]["real"] -= 24
    state.write_text(json.dumps(saved))

    second = create_sandbox_app(control_token=TOKEN, seed=7, time_scale=50, state_file=state)
    clock = second.state.sandbox.clock
    restored = second.state.sandbox.extras["shopify"].tokens[token]
    assert restored.expires_at - clock.monotonic() == pytest.approx(2400, abs=60)
    before = datetime.fromisoformat(saved["clock"]["now"])
    assert (clock.now() - before).total_seconds() == pytest.approx(1200, abs=60)
    async with _client(second) as c:
        assert (await _gql(c, token)).status_code == 200


async def test_the_platform_clock_never_runs_back_across_a_restart(tmp_path: Path) -> None:
    """At a time scale above 1 the sandbox's clock runs ahead of real time; a restart
    continues it, so nothing it stamps after the restart is older than before."""
    state = tmp_path / "sandbox-state.json"
    first = create_sandbox_app(control_token=TOKEN, seed=7, time_scale=1000, state_file=state)
    async with _client(first) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP})
        await _install(c, SHOP)
        await asyncio.sleep(0.05)  # 50 platform seconds ahead of real time
        stamped = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["at"]
    second = create_sandbox_app(control_token=TOKEN, seed=7, time_scale=1000, state_file=state)
    async with _client(second) as c:
        again = (await c.get(f"/_sandbox/shopify/shops/{SHOP}/truth")).json()["at"]
    assert again >= stamped


async def test_the_state_file_is_private_and_no_token_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "sandbox-state.json"
    app = create_sandbox_app(control_token=TOKEN, seed=7, state_file=state)
    async with _client(app) as c:
        token = await _install(c, SHOP, expiring="1")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert token["access_token"] in state.read_text()  # the file is what keeps it
    for secret in (token["access_token"], token["refresh_token"]):
        assert secret not in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == [state.name]  # no temporary file left


async def test_a_large_state_is_written_off_the_event_loop_and_the_newest_wins(
    tmp_path: Path,
) -> None:
    state = tmp_path / "sandbox-state.json"
    app = create_sandbox_app(control_token=TOKEN, seed=7, state_file=state)
    async with _client(app) as c:
        for number in range(150):  # some 30 KB of shops: past what is written inline
            await c.post("/_sandbox/shopify/shops", json={"shop": f"s{number}.myshopify.com"})
        await app.state.sandbox.state_file.flush()
    assert len(json.loads(state.read_text())["shopify"]["shops"]) == 150
    assert (
        create_sandbox_app(control_token=TOKEN, seed=7, state_file=state)
        .state.sandbox.extras["shopify"]
        .shops
    )


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"format": 1, "seed": 7, "shopify": {"shops": 3}})]
)
async def test_an_unusable_state_file_is_set_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    state = tmp_path / "sandbox-state.json"
    state.write_text(content)
    app = create_sandbox_app(control_token=TOKEN, seed=7, state_file=state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(state) in message and "unusable" in message for message in warnings)
    assert (tmp_path / "sandbox-state.json.corrupt").read_text() == content  # kept for a look
    async with _client(app) as c:  # an empty sandbox, working, and saving again
        token = (await _install(c, SHOP))["access_token"]
        assert (await _gql(c, token)).status_code == 200
    assert token in state.read_text()


async def test_the_demo_shops_and_seller_are_the_same_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    first = create_sandbox_app(control_token=TOKEN, seed=7, demo=True, state_file=state)
    async with _client(first) as c:
        # A demo shop re-created smaller through the control API stays as it was made.
        await c.post("/_sandbox/shopify/shops", json={"shop": "demo-kitchen.myshopify.com"})
        shops = await _truths(c)
    seller = first.state.sandbox.extras["amazon"].sellers["A1DEMOSELLER0NA"]
    second = create_sandbox_app(control_token=TOKEN, seed=7, demo=True, state_file=state)
    async with _client(second) as c:
        assert await _truths(c) == shops
    assert second.state.sandbox.extras["amazon"].sellers["A1DEMOSELLER0NA"].created == (
        seller.created
    )
    assert shops["demo-kitchen.myshopify.com"]["products"]["count"] == 50


# --- helpers -------------------------------------------------------------------------------


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=AUTH
    )


async def _install(c: httpx.AsyncClient, shop: str, **token_params: str) -> dict[str, Any]:
    approved = await consent(
        c,
        shop,
        {
            "client_id": SHOPIFY_APP["client_id"],
            "scope": "read_products",
            "redirect_uri": "http://hub.invalid/callback",
            "state": "s",
        },
    )
    code = httpx.URL(approved.headers["location"]).params["code"]
    token = await c.post(
        f"/shopify/{shop}/admin/oauth/access_token",
        json={**SHOPIFY_APP, "code": code, **token_params},
    )
    assert token.status_code == 200
    return dict(token.json())


async def _gql(c: httpx.AsyncClient, token: str) -> httpx.Response:
    return await c.post(
        f"/shopify/{SHOP}/admin/api/2026-10/graphql.json",
        json={"query": SHOP_QUERY},
        headers={"X-Shopify-Access-Token": token},
    )


async def _truths(c: httpx.AsyncClient) -> dict[str, Any]:
    truths: dict[str, Any] = {}
    for shop in ("demo-outdoor.myshopify.com", "demo-kitchen.myshopify.com"):
        truths[shop] = (await c.get(f"/_sandbox/shopify/shops/{shop}/truth")).json()["streams"]
    seller = await c.get("/_sandbox/amazon/sellers/A1DEMOSELLER0NA/truth")
    truths["A1DEMOSELLER0NA"] = seller.json()["streams"]
    return truths
