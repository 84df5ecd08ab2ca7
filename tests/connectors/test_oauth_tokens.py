"""Both platforms' token endpoints through authlib, at the HTTP boundary (respx): the exact
form each grant sends, the typed error of each answer, the refresh a minute ahead of expiry,
one refresh for many callers, the rotated pair saved together, and no secret in a message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from connectors import auth as token_auth
from connectors.amazon import auth as amazon_auth
from connectors.base import MemoryCredentialStore, StoredCredential
from connectors.errors import AuthRevoked, OAuthError, PlatformError, RateLimited, TransientError
from connectors.shopify import auth as shopify_auth
from connectors.shopify.client import ShopifyClient
from connectors.shopify.queries import API_VERSION

SHOP = "tokens.myshopify.com"
SHOPIFY_TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
GRAPHQL = f"https://{SHOP}/admin/api/{API_VERSION}/graphql.json"
LWA = "https://api.amazon.com/auth/o2/token"
CLIENT_SECRET = "shpss_app_secret_value"  # fake secrets: no message may hold them
REFRESH = "shprt_refresh_one"
CODE = "code_from_callback"
SECRETS = (CLIENT_SECRET, REFRESH, CODE)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries as in production, without their seconds of backoff."""
    real = token_auth.with_retries

    def quick(call: Callable[[], Any], **options: Any) -> Any:
        return real(call, **{**options, "initial_wait": 0.001, "max_wait": 0.001})

    monkeypatch.setattr(token_auth, "with_retries", quick)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert not [s for s in SECRETS if s in caplog.text], "a secret reached the logs"


def form(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    return dict(parse_qsl(request.content.decode()))


def shopify_endpoint() -> token_auth.TokenEndpoint:
    return shopify_auth.token_endpoint(
        shop=SHOP, client_id="app-id", client_secret=CLIENT_SECRET, base_url=None
    )


def expiring_store(access: str = "shpat_old", seconds: float = 3600) -> MemoryCredentialStore:
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    return MemoryCredentialStore(
        StoredCredential("access_token", access, ["read_products"], expires),
        StoredCredential("refresh_token", REFRESH, ["read_products"]),
    )


def rotated(access: str = "shpat_new", refresh: str = "shprt_two") -> httpx.Response:
    return httpx.Response(
        200,
        json={"access_token": access, "scope": "read_products", "expires_in": 3600,
              "refresh_token": refresh, "refresh_token_expires_in": 7776000},
    )  # fmt: skip


# --- what each grant sends --------------------------------------------------------------------


@respx.mock
async def test_shopify_code_exchange_posts_the_code_and_credentials_in_the_form(logs) -> None:
    route = respx.post(SHOPIFY_TOKEN_URL).mock(return_value=rotated("shpat_first", "shprt_first"))
    stored = await shopify_auth.exchange_code(
        shop=SHOP, code=CODE, client_id="app-id", client_secret=CLIENT_SECRET, base_url=None,
        expiring=True,
    )  # fmt: skip
    request = route.calls[0].request
    assert form(request) == {
        "grant_type": "authorization_code",
        "code": CODE,
        "expiring": "1",
        "client_id": "app-id",
        "client_secret": CLIENT_SECRET,
    }
    assert "authorization" not in request.headers  # client_secret_post, never Basic
    assert request.headers["accept"] == "application/json"
    access, refresh = stored
    assert (access.kind, access.secret, access.scopes) == (
        "access_token", "shpat_first", ["read_products"],
    )  # fmt: skip
    assert access.expires_at is not None
    assert abs((access.expires_at - datetime.now(UTC)).total_seconds() - 3600) < 5
    assert (refresh.kind, refresh.secret) == ("refresh_token", "shprt_first")
    assert refresh.expires_at is not None and refresh.expires_at > access.expires_at


@respx.mock
async def test_lwa_code_exchange_sends_the_redirect_uri_and_keeps_the_refresh_token() -> None:
    route = respx.post(LWA).mock(
        return_value=httpx.Response(
            200,
            json={"access_token": "Atza|a", "refresh_token": "Atzr|r", "token_type": "bearer",
                  "expires_in": 3600},
        )
    )  # fmt: skip
    stored = await amazon_auth.exchange_code(
        code=CODE, redirect_uri="https://hub.example/connect/amazon/callback",
        client_id="amzn1.application-oa2-client.x", client_secret=CLIENT_SECRET, base_url=None,
    )  # fmt: skip
    assert form(route.calls[0].request) == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": "https://hub.example/connect/amazon/callback",
        "client_id": "amzn1.application-oa2-client.x",
        "client_secret": CLIENT_SECRET,
    }
    assert [(c.kind, c.secret) for c in stored] == [
        ("refresh_token", "Atzr|r"),
        ("access_token", "Atza|a"),
    ]


@respx.mock
async def test_the_refresh_grant_sends_the_refresh_token_and_saves_the_rotated_pair_at_once(
    logs,
) -> None:
    class CountingStore(MemoryCredentialStore):
        saves: list[list[str]] = []

        async def save(self, *credentials: StoredCredential) -> None:
            self.saves.append([c.kind for c in credentials])
            await super().save(*credentials)

    store = CountingStore(*expiring_store(seconds=-10).items.values())  # expired
    token_route = respx.post(SHOPIFY_TOKEN_URL).mock(return_value=rotated())
    graphql = respx.post(GRAPHQL).mock(return_value=httpx.Response(200, json={"data": {}}))
    client = ShopifyClient(
        shop=SHOP, base_url=f"https://{SHOP}",
        token=shopify_auth.token_flow(shopify_endpoint(), store),
    )  # fmt: skip
    await client.query("Shop", "{ shop { name } }", expected_cost=1)
    await client.aclose()
    assert form(token_route.calls[0].request) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": "app-id",
        "client_secret": CLIENT_SECRET,
    }
    assert graphql.calls[0].request.headers["x-shopify-access-token"] == "shpat_new"
    assert store.saves == [["access_token", "refresh_token"]]  # one save: the pair together
    assert store.items["refresh_token"].secret == "shprt_two"


# --- expiry and concurrency -------------------------------------------------------------------


@pytest.mark.parametrize(("left", "refreshes"), [(30, 1), (59, 1), (300, 0)])
@respx.mock
async def test_a_token_within_the_minute_of_leeway_is_refreshed_before_use(
    left: int, refreshes: int
) -> None:
    token_route = respx.post(SHOPIFY_TOKEN_URL).mock(return_value=rotated())
    store = expiring_store(seconds=left)
    flow = shopify_auth.token_flow(shopify_endpoint(), store)
    token = await flow.access_token()
    assert token_route.call_count == refreshes
    assert token == ("shpat_new" if refreshes else "shpat_old")


@respx.mock
async def test_many_callers_of_an_expired_token_share_one_refresh() -> None:
    async def slow(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return rotated()

    token_route = respx.post(SHOPIFY_TOKEN_URL).mock(side_effect=slow)
    store = expiring_store(seconds=-1)
    flows = [shopify_auth.token_flow(shopify_endpoint(), store) for _ in range(8)]
    tokens = await asyncio.gather(*(flow.access_token() for flow in flows for _ in range(3)))
    assert set(tokens) == {"shpat_new"}
    assert token_route.call_count == 1  # the rotated refresh token was spent once
    assert store.locks >= 1


@respx.mock
async def test_a_token_that_stays_refused_after_its_refresh_is_returned_as_refused() -> None:
    respx.post(SHOPIFY_TOKEN_URL).mock(return_value=rotated())
    graphql = respx.post(GRAPHQL).mock(return_value=httpx.Response(401, json={"errors": "no"}))
    store = expiring_store()
    client = ShopifyClient(
        shop=SHOP, base_url=f"https://{SHOP}",
        token=shopify_auth.token_flow(shopify_endpoint(), store),
    )  # fmt: skip
    with pytest.raises(AuthRevoked):
        await client.query("Shop", "{ shop { name } }", expected_cost=1)
    await client.aclose()
    sent = [c.request.headers["x-shopify-access-token"] for c in graphql.calls]
    assert sent == ["shpat_old", "shpat_new"]  # one refresh, one more try, no loop


# --- answers mapped to typed errors -----------------------------------------------------------


@respx.mock
async def test_invalid_grant_on_refresh_means_reconnect_and_keeps_the_stored_tokens(logs) -> None:
    respx.post(SHOPIFY_TOKEN_URL).mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "refresh token is invalid"}
        )
    )
    store = expiring_store(seconds=-1)
    before = dict(store.items)
    with pytest.raises(AuthRevoked) as raised:
        await shopify_auth.token_flow(shopify_endpoint(), store).access_token()
    assert "invalid_grant" in str(raised.value)
    assert not [s for s in SECRETS if s in str(raised.value)]
    assert store.items == before


@respx.mock
async def test_a_refused_code_says_what_to_do(logs) -> None:
    respx.post(LWA).mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "code expired"}
        )
    )
    with pytest.raises(OAuthError) as raised:
        await amazon_auth.exchange_code(
            code=CODE, redirect_uri="https://hub.example/cb", client_id="c",
            client_secret=CLIENT_SECRET, base_url=None,
        )  # fmt: skip
    assert "Start the connection again" in raised.value.user_message
    assert not isinstance(raised.value, AuthRevoked)


@respx.mock
async def test_server_errors_are_retried_then_transient(logs) -> None:
    route = respx.post(SHOPIFY_TOKEN_URL).mock(
        return_value=httpx.Response(503, text="<html>upstream unavailable</html>")
    )
    with pytest.raises(TransientError) as raised:
        await shopify_auth.token_flow(shopify_endpoint(), expiring_store(seconds=-1)).access_token()
    assert route.call_count == 3
    assert "503" in str(raised.value)
    assert not [s for s in SECRETS if s in str(raised.value)]


@respx.mock
async def test_a_lost_connection_is_transient_and_a_retry_can_succeed() -> None:
    route = respx.post(SHOPIFY_TOKEN_URL).mock(
        side_effect=[httpx.ConnectError("refused"), rotated()]
    )
    token = await shopify_auth.token_flow(
        shopify_endpoint(), expiring_store(seconds=-1)
    ).access_token()
    assert token == "shpat_new" and route.call_count == 2
    respx.post(LWA).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransientError):
        await amazon_auth.grantless_token(
            scope="sellingpartnerapi::notifications", client_id="c", client_secret="s",
            base_url=None,
        )  # fmt: skip


@respx.mock
async def test_throttling_is_rate_limited_with_the_platform_s_wait() -> None:
    respx.post(LWA).mock(
        return_value=httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "7"})
    )
    store = MemoryCredentialStore(StoredCredential("refresh_token", "Atzr|x"))
    endpoint = amazon_auth.token_endpoint(client_id="c", client_secret="s", base_url=None)
    with pytest.raises(RateLimited) as raised:
        await amazon_auth.token_flow(endpoint, store).access_token()
    assert raised.value.retry_after == 7


MALFORMED = [
    httpx.Response(200, text="<html>Sign in</html>"),
    httpx.Response(200, json=["access_token"]),
    httpx.Response(200, json={"token": "shpat_x"}),
    httpx.Response(200, json={"access_token": ""}),
    httpx.Response(200, json={"access_token": "shpat_x", "expires_in": "soon"}),
    httpx.Response(200, json={"access_token": "shpat_x", "refresh_token": 12}),
    httpx.Response(400, text="Bad Request"),
]


@pytest.mark.parametrize("answer", MALFORMED)
@respx.mock
async def test_a_malformed_answer_to_a_code_exchange_is_a_clear_oauth_error(
    answer: httpx.Response, logs
) -> None:
    respx.post(SHOPIFY_TOKEN_URL).mock(return_value=answer)
    with pytest.raises(OAuthError) as raised:
        await shopify_auth.exchange_code(
            shop=SHOP, code=CODE, client_id="app-id", client_secret=CLIENT_SECRET,
            base_url=None, expiring=True,
        )  # fmt: skip
    assert "Shopify refused the authorization code" in raised.value.user_message
    assert not [s for s in SECRETS if s in str(raised.value)]


@pytest.mark.parametrize("answer", MALFORMED)
@respx.mock
async def test_a_malformed_answer_to_a_refresh_fails_the_sync_and_saves_nothing(
    answer: httpx.Response,
) -> None:
    respx.post(SHOPIFY_TOKEN_URL).mock(return_value=answer)
    store = expiring_store(seconds=-1)
    before = dict(store.items)
    with pytest.raises(PlatformError, match="Shopify token refresh failed"):
        await shopify_auth.token_flow(shopify_endpoint(), store).access_token()
    assert store.items == before
