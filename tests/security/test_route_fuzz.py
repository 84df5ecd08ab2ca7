"""Hostile input on the routes anyone on the internet can reach without a session: the
Shopify webhook and both OAuth callbacks. Whatever the headers, body or query, the hub
answers with a clear 4xx (never a 500 and its traceback) and changes no row.

Random input from hypothesis, plus the cases issue 12 found (non-ASCII HMACs). The hub's
database holds two connected shops with records, so a request that wrongly acted would
show in the row counts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select
from starlette.applications import Starlette

from connectors.shopify.auth import query_signature
from connectors.shopify.webhooks import SHAPES
from dashboard.api import build_api
from dashboard.db import session_scope
from dashboard.models import OAuthState
from dashboard.services import shopify_webhooks
from dashboard.settings import get_settings
from tests.security.test_webhook_binding import (
    ATTACKER,
    SHOPIFY,
    VICTIM,
    WEBHOOK,
    row_counts,
    seed_shop,
    sign,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHOPS = [VICTIM, ATTACKER, "nobody.myshopify.com", "VICTIM.myshopify.com"]

# Header values as bytes: any latin-1 text (what HTTP carries), non-ASCII included.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)
# Query values: any Unicode a URL can carry (no lone surrogates: they cannot be UTF-8).
query_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), query_text
)
PAYLOAD_KEYS = sorted({
    "id", "shop_id", "shop_domain", "myshopify_domain", "domain", "customer",
    "orders_requested", "orders_to_redact", "data_request", "admin_graphql_api_id",
    "inventory_item_id", "location_id", "title",
})  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(PAYLOAD_KEYS) | query_text, inner, max_size=5)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(
        st.sampled_from(PAYLOAD_KEYS), json_value | st.sampled_from(SHOPS), max_size=6
    ).map(lambda payload: json.dumps(payload).encode()),
)
topics = st.sampled_from(sorted(SHAPES)) | header_text
base64_text = st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())


@pytest.fixture
def hub_app(hub_env: object, hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Starlette:
    from tests.conftest import reset_caches

    monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", SHOPIFY)
    reset_caches()
    with session_scope() as s:
        seed_shop(s, VICTIM)
        seed_shop(s, ATTACKER, rows=2)
    return build_api(Starlette())


def counts() -> dict[str, int]:
    with session_scope() as s:
        states = int(s.exec(select(func.count()).select_from(OAuthState)).one())
    return {**row_counts(), "oauth_states": states}


def request(app: Starlette, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request to the hub's app, then the webhook work it started, in a fresh loop."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            response = await client.request(method, url, **kwargs)
        await asyncio.gather(*shopify_webhooks._tasks)
        return response

    # The token still works wherever a valid uninstall body reaches the confirmation call.
    with respx.mock(assert_all_called=False) as platform:
        platform.post(url__startswith=SHOPIFY).respond(
            200, json={"data": {"shop": {"name": "Shop"}}}
        )
        return asyncio.run(send())


def refused_cleanly(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    assert "Traceback" not in response.text


@pytest.fixture
def unchanged(hub_app: Starlette) -> Iterator[None]:
    before = counts()
    yield
    assert counts() == before


# --- the cases issue 12 found -----------------------------------------------------------


@pytest.mark.parametrize(
    "signature", ["é" * 44, "ZGVhZGJlZWY=\u00ff", "not base64!", "", "a" * 10_000]
)
def test_a_malformed_or_non_ascii_webhook_hmac_is_401(
    hub_app: Starlette, unchanged: None, signature: str
) -> None:
    body = json.dumps({"shop_id": 1, "shop_domain": VICTIM}).encode()
    headers = {
        "X-Shopify-Topic": "shop/redact",
        "X-Shopify-Shop-Domain": VICTIM,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": signature.encode("latin-1"),
    }
    response = request(hub_app, "POST", WEBHOOK, content=body, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("given_hmac", ["é" * 64, "zz" * 32, "0" * 63, "ab cd", "\u2028"])
def test_a_malformed_or_non_ascii_callback_hmac_is_the_clear_400_page(
    hub_app: Starlette, unchanged: None, given_hmac: str
) -> None:
    params = {"shop": VICTIM, "state": "x", "code": "c", "timestamp": "1", "hmac": given_hmac}
    response = request(hub_app, "GET", "/api/oauth/shopify/callback", params=params)
    assert response.status_code == 400
    assert "could not be verified" in response.text


# --- fuzzing ------------------------------------------------------------------------------


@FUZZ
@given(
    topic=topics,
    shop=st.sampled_from(SHOPS) | header_text,
    webhook_id=st.just("") | header_text | st.uuids().map(str),
    body=bodies,
    signature=st.just("signed") | header_text | base64_text,
    content_length=st.none() | header_text | st.integers(-5, 10**12).map(str),
)
# Found by this test: "¹".isdigit() is true, int("¹") raises (the route answered 500).
@example(topic="products/update", shop=SHOPS[0], webhook_id="1", body=b"{}", signature="signed",
         content_length="\u00b9")  # fmt: skip
def test_random_webhooks_get_no_500_and_change_no_row(
    hub_app: Starlette,
    topic: str,
    shop: str,
    webhook_id: str,
    body: bytes,
    signature: str,
    content_length: str | None,
) -> None:
    headers = {
        "X-Shopify-Topic": topic.encode("latin-1"),
        "X-Shopify-Shop-Domain": shop.encode("latin-1"),
        "X-Shopify-Webhook-Id": webhook_id.encode("latin-1"),
        "X-Shopify-Hmac-Sha256": (sign(body) if signature == "signed" else signature).encode(
            "latin-1"
        ),
    }
    if content_length is not None:
        headers["Content-Length"] = content_length.encode("latin-1")
    before = counts()
    refused_cleanly(request(hub_app, "POST", WEBHOOK, content=body, headers=headers))
    assert counts() == before


SHOPIFY_PARAMS = ["hmac", "shop", "state", "code", "timestamp", "host"]
AMAZON_PARAMS = [
    "state", "selling_partner_id", "spapi_oauth_code", "mws_auth_token", "error",
    "error_code", "error_description",
]  # fmt: skip


@FUZZ
@given(
    params=st.dictionaries(st.sampled_from(SHOPIFY_PARAMS) | query_text, query_text, max_size=7),
    signed=st.booleans(),
)
def test_random_shopify_callbacks_get_no_500_and_change_no_row(
    hub_app: Starlette, params: dict[str, str], signed: bool
) -> None:
    if signed:  # past the signature: the state, time and shop checks get the random values
        params["hmac"] = query_signature(params, str(get_settings().shopify_client_secret))
    before = counts()
    response = request(hub_app, "GET", "/api/oauth/shopify/callback", params=params)
    refused_cleanly(response)
    assert response.status_code == 400
    assert counts() == before


@FUZZ
@given(params=st.dictionaries(st.sampled_from(AMAZON_PARAMS) | query_text, query_text, max_size=7))
def test_random_amazon_callbacks_get_no_500_and_change_no_row(
    hub_app: Starlette, params: dict[str, str]
) -> None:
    before = counts()
    response = request(hub_app, "GET", "/api/oauth/amazon/callback", params=params)
    refused_cleanly(response)
    assert response.status_code == 400
    assert counts() == before
