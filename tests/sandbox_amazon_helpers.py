"""What the Amazon sandbox's tests share: a sandbox with their control token and redirect
URI, a client signed in as a seller with an LWA access token (the ``amazon`` fixture), the
consent page and LWA token exchanges, and validation of a response against its operation's
schema in Amazon's models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import jsonschema
import pytest

from connectors.sandbox.access import sandbox_apps
from connectors.sandbox.amazon import spec
from connectors.sandbox.app import create_sandbox_app
from connectors.sandbox.consent import form_fields

SELLER = "A3SANDBOXTEST"
US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"
TOKEN = "test-control-token"
_APPS = sandbox_apps(TOKEN)
AMAZON_APP = {
    "app_id": _APPS.amazon_app_id,
    "client_id": _APPS.amazon_client_id,
    "client_secret": _APPS.amazon_client_secret,
}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sandbox_app(**options: Any) -> Any:
    """A sandbox with this file's control token and "http://hub/cb" registered."""
    return create_sandbox_app(
        control_token=TOKEN, redirect_uris={"amazon": ["http://hub/cb"]}, **options
    )


@pytest.fixture
async def amazon() -> AsyncIterator[httpx.AsyncClient]:
    app = sandbox_app(seed=3, time_scale=1000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=AUTH
    ) as client:
        created = await client.post(
            "/_sandbox/amazon/sellers",
            json={"selling_partner_id": SELLER, "orders": 230, "listings": 120, "fba_items": 70,
                  "marketplaces": [US, CA]},
        )  # fmt: skip
        assert created.status_code == 201
        client.headers["x-amz-access-token"] = await access_token(client)
        await asyncio.sleep(0.13)  # 2 platform minutes: recent orders become visible
        yield client


CONSENT = "/amazon/sellercentral/sellercentral.amazon.com/apps/authorize/consent"


async def consent_code(client: httpx.AsyncClient, redirect_uri: str = "http://hub/cb") -> str:
    params = {"application_id": AMAZON_APP["app_id"], "state": "st", "redirect_uri": redirect_uri}
    page = await client.get(CONSENT, params=params)
    response = await client.post(
        CONSENT,
        params=params,
        data={**form_fields(page.text), "decision": "approve", "selling_partner_id": SELLER},
    )
    assert response.status_code == 302
    query = parse_qs(urlparse(response.headers["location"]).query)
    assert query["state"] == ["st"] and query["selling_partner_id"] == [SELLER]
    return query["spapi_oauth_code"][0]


def token_form(**values: str) -> dict[str, str]:
    return {
        "client_id": AMAZON_APP["client_id"],
        "client_secret": AMAZON_APP["client_secret"],
    } | values


async def access_token(client: httpx.AsyncClient) -> str:
    code = await consent_code(client)
    response = await client.post(
        "/amazon/lwa/auth/o2/token",
        data=token_form(grant_type="authorization_code", code=code, redirect_uri="http://hub/cb"),
    )
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("Atza|") and body["refresh_token"].startswith("Atzr|")
    # A refresh answers the same refresh token beside a new access token, as LWA does.
    refreshed = await client.post(
        "/amazon/lwa/auth/o2/token",
        data=token_form(grant_type="refresh_token", refresh_token=body["refresh_token"]),
    )
    assert refreshed.json()["refresh_token"] == body["refresh_token"]
    assert refreshed.json()["access_token"] != body["access_token"]
    return str(refreshed.json()["access_token"])


def validate(operation_id: str, model_hint: str, response: httpx.Response) -> Any:
    """The body validates against the operation's response schema for its status."""
    operation = spec.operation(operation_id, model_hint)
    schema = operation.response_schema(response.status_code)
    assert schema is not None, f"{operation_id} declares no {response.status_code} response"
    body = response.json()
    jsonschema.Draft4Validator(schema).validate(body)
    assert response.headers["x-amzn-RequestId"]
    return body
