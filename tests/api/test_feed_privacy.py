"""A consumer of the change feed is told about Shopify's customers/redact too: the customer's
orders come again in the feed without the personal data, so the consumer's copy loses it."""

from __future__ import annotations

import httpx
from sqlmodel import Session

from tests.api.conftest import MakeKey, bearer
from tests.test_shopify_compliance import SHOP, SHOP_ID, deliver, seed


async def test_redacted_orders_reach_the_feed_without_the_email(
    session: Session, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = seed(session)
    key = make_key(scopes=["records:read"])
    url = f"/api/v1/integrations/{integration_id}/records/orders"
    before = (await hub.get(url, params={"include_raw": "true"}, headers=bearer(key))).json()
    assert before["records"][0]["fields"]["email"] == "alice@example.com"
    await deliver(
        "customers/redact",
        {"shop_id": SHOP_ID, "shop_domain": SHOP, "customer": {"id": 7}, "orders_to_redact": []},
    )
    after = (
        await hub.get(
            url, params={"since": before["next_cursor"], "include_raw": "true"},
            headers=bearer(key),
        )
    ).json()  # fmt: skip
    [order] = after["records"]
    assert order["fields"]["email"] is None and "alice" not in str(order["raw"])
