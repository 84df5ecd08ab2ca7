"""A consumer of the change feed is told about Shopify's privacy erasures: customers/redact
sends the customer's orders again without the personal data and the customer as a
tombstone; shop/redact sends every record of the shop as a tombstone. A consumer that
applies the feed as docs/api.md says ends with the erased records gone from its copy."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import Session

from dashboard.api.v1.records import KINDS
from tests.api.conftest import MakeKey, bearer
from tests.test_shopify_compliance import ALICE, SHOP, SHOP_ID, deliver, seed, uninstalled


class Consumer:
    """Another system's copy of the hub's records, kept by following the feed: one cursor
    per kind; a tombstone removes the record, anything else replaces it."""

    def __init__(self, hub: httpx.AsyncClient, key: str, integration_id: uuid.UUID) -> None:
        self.hub, self.key, self.integration_id = hub, key, integration_id
        self.cursors: dict[str, str | None] = dict.fromkeys(KINDS)
        self.copy: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}

    async def follow(self) -> None:
        for kind in KINDS:
            while True:
                params = {"include_raw": "true", "limit": "2"}
                cursor = self.cursors[kind]
                if cursor:
                    params["since"] = cursor
                url = f"/api/v1/integrations/{self.integration_id}/records/{kind}"
                answer = await self.hub.get(url, params=params, headers=bearer(self.key))
                assert answer.status_code == 200, answer.text
                page = answer.json()
                for record in page["records"]:
                    if record["deleted"]:
                        self.copy[kind].pop(record["id"], None)
                    else:
                        self.copy[kind][record["id"]] = record
                self.cursors[kind] = page["next_cursor"]
                if not page["has_more"]:
                    break


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


async def test_a_consumer_following_the_feed_erases_the_redacted_customer(
    session: Session, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = seed(session)
    consumer = Consumer(hub, make_key(scopes=["records:read"]), integration_id)
    await consumer.follow()
    assert "alice@example.com" in str(consumer.copy["customers"][ALICE])
    await deliver(
        "customers/redact",
        {"shop_id": SHOP_ID, "shop_domain": SHOP, "customer": {"id": 7}, "orders_to_redact": []},
    )
    await consumer.follow()
    assert ALICE not in consumer.copy["customers"]
    assert set(consumer.copy["customers"]) == {"gid://shopify/Customer/8"}  # others stay
    assert "alice" not in str(consumer.copy).lower() and "liddell" not in str(consumer.copy)
    assert consumer.copy["products"], "records of the shop not named are kept"


async def test_a_consumer_following_the_feed_erases_every_record_after_shop_redact(
    session: Session, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = seed(session)
    consumer = Consumer(hub, make_key(scopes=["records:read"]), integration_id)
    await consumer.follow()
    assert sum(len(records) for records in consumer.copy.values()) == 4
    uninstalled(integration_id, ago=timedelta(hours=48, minutes=1))
    await deliver("shop/redact", {"shop_id": SHOP_ID, "shop_domain": SHOP})
    await consumer.follow()
    assert consumer.copy == {kind: {} for kind in KINDS}
    # A consumer starting now learns nothing of the shop either: tombstones only.
    newcomer = Consumer(hub, make_key(scopes=["records:read"]), integration_id)
    await newcomer.follow()
    assert newcomer.copy == {kind: {} for kind in KINDS}
