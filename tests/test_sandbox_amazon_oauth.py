"""The Amazon sandbox authorizes as Amazon documents it: LWA codes are single-use and
short-lived, expired and revoked tokens get the documented 403, and the Seller Central
consent page answers MD1000 and MD5101, lets the person choose the seller or create one,
and takes forms for its own authorization only. The Selling Partner API itself:
tests/test_sandbox_amazon_spapi.py."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlparse

from connectors.sandbox.consent import form_fields
from tests.sandbox_amazon_helpers import (
    AMAZON_APP,
    CONSENT,
    SELLER,
    US,
    amazon,
    consent_code,
    token_form,
)

__all__ = ["amazon"]  # the seller's client fixture, imported for this module's tests


async def test_lwa_codes_are_single_use_and_short_lived(amazon) -> None:
    code = await consent_code(amazon)
    exchange = token_form(grant_type="authorization_code", code=code, redirect_uri="http://hub/cb")
    assert (await amazon.post("/amazon/lwa/auth/o2/token", data=exchange)).status_code == 200
    reused = await amazon.post("/amazon/lwa/auth/o2/token", data=exchange)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    late = await consent_code(amazon)
    await asyncio.sleep(0.31)  # five platform minutes
    expired = token_form(grant_type="authorization_code", code=late, redirect_uri="http://hub/cb")
    assert (await amazon.post("/amazon/lwa/auth/o2/token", data=expired)).json()[
        "error"
    ] == "invalid_grant"
    wrong = await amazon.post(
        "/amazon/lwa/auth/o2/token", data=exchange | {"client_secret": "guess"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grantless = await amazon.post(
        "/amazon/lwa/auth/o2/token",
        data=token_form(grant_type="client_credentials", scope="sellingpartnerapi::notifications"),
    )
    assert grantless.status_code == 200 and "refresh_token" not in grantless.json()
    bad_scope = await amazon.post(
        "/amazon/lwa/auth/o2/token",
        data=token_form(grant_type="client_credentials", scope="sellingpartnerapi::orders"),
    )
    assert bad_scope.json()["error"] == "invalid_scope"


async def test_expired_and_revoked_tokens_get_the_documented_403(amazon) -> None:
    path = "/amazon/sp/na/fba/inventory/v1/summaries"
    params = {"granularityType": "Marketplace", "granularityId": US, "marketplaceIds": US}
    await amazon.post(f"/_sandbox/amazon/sellers/{SELLER}/expire-tokens")
    expired = await amazon.get(path, params=params)
    assert expired.status_code == 403
    assert expired.json()["errors"][0] == {
        "code": "Unauthorized",
        "message": "Access to requested resource is denied.",
        "details": "The access token you provided has expired.",
    }
    await amazon.post(f"/_sandbox/amazon/sellers/{SELLER}/revoke")
    revoked = await amazon.get(path, params=params, headers={"x-amz-access-token": "Atza|forged"})
    assert "revoked, malformed or invalid" in revoked.json()["errors"][0]["details"]


async def test_consent_errors_md1000_and_md5101(amazon) -> None:
    page = "/amazon/sellercentral/sellercentral.amazon.com/apps/authorize/consent"
    params = {"application_id": AMAZON_APP["app_id"], "state": "s", "redirect_uri": "http://hub/cb"}
    await amazon.put("/_sandbox/amazon/app", json={"draft": True})
    draft = await amazon.get(page, params=params)
    assert draft.status_code == 400 and "MD1000" in draft.text
    assert (await amazon.get(page, params=params | {"version": "beta"})).status_code == 200
    await amazon.put(
        "/_sandbox/amazon/app", json={"draft": False, "redirect_uris": ["https://hub.example/cb"]}
    )
    unregistered = await amazon.get(page, params=params)
    assert unregistered.status_code == 400 and "MD5101" in unregistered.text


async def test_consent_lets_the_person_choose_the_seller_or_create_one(amazon) -> None:
    params = {
        "application_id": AMAZON_APP["app_id"],
        "state": "st",
        "redirect_uri": "http://hub/cb",
    }
    await amazon.post(
        "/_sandbox/amazon/sellers",
        json={"selling_partner_id": "A2SECONDSELLER", "store_name": "Second Store"},
    )
    page = await amazon.get(CONSENT, params=params)
    # Every NA seller to sign in as, the first one chosen.
    choices = re.findall(r'name="selling_partner_id" value="(\w+)"( checked)?', page.text)
    assert choices == [(SELLER, " checked"), ("A2SECONDSELLER", "")]
    assert "Second Store" in page.text
    fields = form_fields(page.text)
    second = await amazon.post(
        CONSENT, params=params,
        data={**fields, "decision": "approve", "selling_partner_id": "A2SECONDSELLER"},
    )  # fmt: skip
    assert second.status_code == 302
    assert parse_qs(urlparse(second.headers["location"]).query)["selling_partner_id"] == [
        "A2SECONDSELLER"
    ]

    created = await amazon.post(
        CONSENT, params=params, data={**fields, "decision": "create", "store_name": " Trail  Co "}
    )
    assert created.status_code == 200
    new_id = re.search(r'value="(\w+)" checked', created.text).group(1)
    assert re.fullmatch(r"A[A-Z0-9]{13}", new_id) and "Trail Co" in created.text
    confirmed = await amazon.post(
        CONSENT, params=params,
        data={**form_fields(created.text), "decision": "approve", "selling_partner_id": new_id},
    )  # fmt: skip
    assert confirmed.headers["location"].startswith("http://hub/cb?")
    assert parse_qs(urlparse(confirmed.headers["location"]).query)["selling_partner_id"] == [new_id]
    truth = (await amazon.get(f"/_sandbox/amazon/sellers/{new_id}/truth")).json()["streams"]
    assert 0 < truth["listings"]["count"] <= 40  # a small catalog of its own

    nameless = await amazon.post(
        CONSENT, params=params, data={**fields, "decision": "create", "store_name": "  "}
    )
    assert nameless.status_code == 400 and "Enter a store name" in nameless.text


async def test_consent_forms_answer_their_own_authorization_only(amazon) -> None:
    """Another site cannot post the form (it cannot read the page's token), and a form filled
    for one authorization request does not answer another: nothing is created or approved."""
    params = {
        "application_id": AMAZON_APP["app_id"],
        "state": "st",
        "redirect_uri": "http://hub/cb",
    }
    fields = form_fields((await amazon.get(CONSENT, params=params)).text)
    attempts = [
        (params, {"decision": "create", "store_name": "Forged"}),
        (params, {"decision": "approve", "selling_partner_id": SELLER}),
        (params | {"state": "other"}, {**fields, "decision": "create", "store_name": "Forged"}),
        (params | {"state": "other"}, {**fields, "decision": "approve"}),
    ]
    for query, form in attempts:
        refused = await amazon.post(CONSENT, params=query, data=form)
        assert refused.status_code == 403 and "location" not in refused.headers
        assert "Forged" not in (await amazon.get(CONSENT, params=params)).text
    # The redirect still goes to registered redirect URIs only, token or not.
    stranger = params | {"redirect_uri": "https://evil.example/cb"}
    refused = await amazon.post(
        CONSENT, params=stranger, data={**fields, "decision": "create", "store_name": "Forged"}
    )
    assert refused.status_code == 400 and "MD5101" in refused.text
