"""The sandbox serves every Admin API version Shopify supports, the release candidate and
unstable, and falls forward from retired versions to the oldest supported one, saying in
`X-Shopify-API-Version` which version answered."""

from __future__ import annotations

import pytest

from tests.sandbox_shopify_helpers import SHOP, client, install, sandbox_app

QUERY = "{ shop { myshopifyDomain } publicApiVersions { handle displayName supported } }"


async def ask(version: str) -> tuple[int, str | None, dict]:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1})
        token = await install(c)
        r = await c.post(
            f"/shopify/{SHOP}/admin/api/{version}/graphql.json",
            json={"query": QUERY},
            headers={"X-Shopify-Access-Token": token},
        )
        return r.status_code, r.headers.get("x-shopify-api-version"), r.json()


@pytest.mark.parametrize(
    ("requested", "answered"),
    [
        ("2026-10", "2026-10"),
        ("2026-07", "2026-07"),
        ("2026-04", "2026-04"),
        ("2026-01", "2026-01"),
        ("2027-01", "2027-01"),  # the release candidate
        ("unstable", "unstable"),
        ("2025-10", "2026-01"),  # retired: falls forward to the oldest supported
        ("2025-07", "2026-01"),  # tap-shopify 3.13.0's pinned version
        ("2019-04", "2026-01"),
    ],
)
async def test_versions_answer_or_fall_forward(requested: str, answered: str) -> None:
    status, header, body = await ask(requested)
    assert status == 200 and header == answered
    assert body["data"]["shop"]["myshopifyDomain"] == SHOP


@pytest.mark.parametrize("requested", ["2027-04", "2026-05", "latest", "2026-1"])
async def test_versions_shopify_does_not_have_are_not_found(requested: str) -> None:
    status, header, _ = await ask(requested)
    assert status == 404 and header is None


async def test_public_api_versions_lists_supported_candidate_and_unstable() -> None:
    _, _, body = await ask("2026-10")
    listed = {(v["handle"], v["supported"]) for v in body["data"]["publicApiVersions"]}
    assert listed == {
        ("2026-01", True), ("2026-04", True), ("2026-07", True), ("2026-10", True),
        ("2027-01", False), ("unstable", False),
    }  # fmt: skip


async def test_a_bad_token_is_refused_with_the_answering_version() -> None:
    app = sandbox_app(seed=1)
    async with client(app) as c:
        await c.post("/_sandbox/shopify/shops", json={"shop": SHOP, "products": 1})
        r = await c.post(
            f"/shopify/{SHOP}/admin/api/2025-07/graphql.json",
            json={"query": QUERY},
            headers={"X-Shopify-Access-Token": "nope"},
        )
    assert r.status_code == 401 and r.headers["x-shopify-api-version"] == "2026-01"
