"""The Shopify sandbox follows Shopify's OAuth contract: consent only on a myshopify store
(or creating one), signed redirects, single-use codes that expire on the platform clock, a
cancel that sends the app nothing, expiring tokens, revocation and reinstalls."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlparse

import pytest

from connectors.sandbox.consent import form_fields
from tests.sandbox_shopify_helpers import CLIENT, SHOP, client, consent, gql, install, sandbox_app


@pytest.mark.parametrize("shop", ["evil.example.com", "shop.myshopify.com.evil.example", "x.com"])
async def test_consent_happens_only_on_a_myshopify_store(shop: str) -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        page = await c.get(
            f"/shopify/{shop}/admin/oauth/authorize",
            params={"client_id": CLIENT["client_id"], "scope": "read_products",
                    "redirect_uri": "http://hub/cb", "state": "xyz"},
        )  # fmt: skip
        assert page.status_code == 404 and "no store at this address" in page.text
        assert "Install app" not in page.text and "Create store" not in page.text


async def test_oauth_redirect_is_signed_and_codes_are_single_use() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        page = await c.get(
            f"/shopify/{SHOP}/admin/oauth/authorize",
            params={
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "xyz",
            },
        )
        assert page.status_code == 200 and "read_products" in page.text
        r = await consent(
            c,
            SHOP,
            {
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "xyz",
            },
        )
        query = {k: v[0] for k, v in parse_qs(urlparse(r.headers["location"]).query).items()}
        assert set(query) == {"code", "hmac", "host", "shop", "state", "timestamp"}
        message = "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "hmac")
        expected = hmac.new(
            CLIENT["client_secret"].encode(), message.encode(), hashlib.sha256
        ).hexdigest()
        assert query["hmac"] == expected and query["state"] == "xyz"

        token = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token", json={**CLIENT, "code": query["code"]}
        )
        assert token.status_code == 200 and token.json()["scope"] == "read_products"
        again = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token", json={**CLIENT, "code": query["code"]}
        )
        assert again.status_code == 400
        wrong_secret = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token",
            json={**CLIENT, "client_secret": "x", "code": "y"},
        )
        assert wrong_secret.json()["error"] == "invalid_client"


async def test_consent_on_a_shop_that_does_not_exist_offers_to_create_it() -> None:
    app = sandbox_app(seed=1)
    new_shop = "brand-new.myshopify.com"
    url = f"/shopify/{new_shop}/admin/oauth/authorize"
    params = {"client_id": CLIENT["client_id"], "scope": "read_products",
              "redirect_uri": "http://hub/cb", "state": "st"}  # fmt: skip
    async with client(app) as c:
        page = await c.get(url, params=params)
        assert page.status_code == 200 and f"no store at <strong>{new_shop}" in page.text
        assert "Create store and install app" in page.text and ">Install app<" not in page.text
        # Looking is not creating.
        assert (await c.get(f"/_sandbox/shopify/shops/{new_shop}/truth")).status_code == 404
        fields = form_fields(page.text)
        # Approving a store that does not exist is refused, token or not.
        missing = await c.post(url, data={**fields, "decision": "approve"})
        assert missing.status_code == 404 and "no store at this address" in missing.text
        # A form from elsewhere (no token, or another request's) creates nothing.
        for forged in ({**params, "decision": "create"},
                       {**fields, "state": "other", "decision": "create"}):  # fmt: skip
            refused = await c.post(url, data=forged)
            assert refused.status_code == 403 and "location" not in refused.headers
        assert (await c.get(f"/_sandbox/shopify/shops/{new_shop}/truth")).status_code == 404
        created = await c.post(url, data={**fields, "decision": "create"})
        assert created.status_code == 302
        assert created.headers["location"].startswith("http://hub/cb?")
        truth = (await c.get(f"/_sandbox/shopify/shops/{new_shop}/truth")).json()
        assert truth["streams"]["products"]["count"] == 50  # a small store
        # From now on the store exists: its owner is asked to install, nothing else.
        again = await c.get(url, params=params)
        assert ">Install app<" in again.text and "Create store" not in again.text


async def test_a_cancel_sends_nothing_to_the_app_and_leads_back_to_where_it_came_from() -> None:
    """As on Shopify, a cancel sends the app no redirect and no code; the sandbox, which has no
    admin to land in, leads back to the app's page the merchant came from (only ever a page
    of the app's own site)."""
    app = sandbox_app(seed=1)
    url = f"/shopify/{SHOP}/admin/oauth/authorize"
    params = {"client_id": CLIENT["client_id"], "scope": "read_products",
              "redirect_uri": "http://hub/cb", "state": "st"}  # fmt: skip
    async with client(app) as c:
        for referer, link in (
            ("http://hub/connect/link-token", "http://hub/connect/link-token"),
            ("http://evil.example/phish", None),
            (None, None),
        ):
            headers = {"referer": referer} if referer else {}
            page = await c.get(url, params=params, headers=headers)
            cancelled = await c.post(url, data={**form_fields(page.text), "decision": "deny"})
            assert cancelled.status_code == 200 and "location" not in cancelled.headers
            assert "Installation cancelled" in cancelled.text and "code=" not in cancelled.text
            if link:
                assert f"<a href='{link}'>Back to the app</a>" in cancelled.text
            else:
                assert "Back to the app" not in cancelled.text
        # A forged way back in the form is held to the same rule.
        page = await c.get(url, params=params)
        forged = {**form_fields(page.text), "return_to": "javascript:alert(1)", "decision": "deny"}
        assert "Back to the app" not in (await c.post(url, data=forged)).text


async def test_codes_expire_on_the_platform_clock() -> None:
    app = sandbox_app(seed=1, time_scale=1000)  # 60 s of code life = 60 ms
    async with client(app) as c:
        r = await consent(
            c,
            SHOP,
            {
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "s",
            },
        )
        code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
        import asyncio

        await asyncio.sleep(0.1)
        late = await c.post(
            f"/shopify/{SHOP}/admin/oauth/access_token", json={**CLIENT, "code": code}
        )
        assert late.status_code == 400


async def test_expiring_tokens_refresh_and_revocation_is_401() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        r = await consent(
            c,
            SHOP,
            {
                "client_id": CLIENT["client_id"],
                "scope": "read_products",
                "redirect_uri": "http://hub/cb",
                "state": "s",
            },
        )
        code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
        body = (
            await c.post(
                f"/shopify/{SHOP}/admin/oauth/access_token",
                json={**CLIENT, "code": code, "expiring": "1"},
            )
        ).json()
        assert body["expires_in"] == 3600 and body["refresh_token"]
        refreshed = (
            await c.post(
                f"/shopify/{SHOP}/admin/oauth/access_token",
                json={
                    **CLIENT,
                    "grant_type": "refresh_token",
                    "refresh_token": body["refresh_token"],
                },
            )
        ).json()
        assert (await gql(c, refreshed["access_token"], "{ shop { name } }")).status_code == 200
        await c.post(f"/_sandbox/shopify/shops/{SHOP}/revoke")
        denied = await gql(c, refreshed["access_token"], "{ shop { name } }")
        assert denied.status_code == 401 and "Invalid API key" in denied.json()["errors"]


async def test_reinstall_after_uninstall_gives_access_again_but_not_to_old_tokens() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        old = await install(c, expiring="1")
        assert (await gql(c, old, "{ shop { name } }")).status_code == 200
        assert (await c.post(f"/_sandbox/shopify/shops/{SHOP}/revoke")).status_code == 200
        assert (await gql(c, old, "{ shop { name } }")).status_code == 401

        new = await install(c)  # the merchant installs the app again on the consent page

        assert (await gql(c, new, "{ shop { name } }")).status_code == 200
        # Uninstalling destroyed the earlier token for good; only the new install counts.
        assert (await gql(c, old, "{ shop { name } }")).status_code == 401
