"""Webhook deliveries arriving together are stored in one transaction (a group commit), and
no request is answered before its row is committed (issue 16)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from dashboard.db import session_scope
from dashboard.models import WebhookEvent
from dashboard.services import shopify_webhooks, webhook_intake
from dashboard.services.integrations import create_integration
from dashboard.services.webhook_intake import Delivery, GroupCommit, store_deliveries

SHOP = "intake.myshopify.com"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> str:
    """The hub database on a SQLite file, then on PostgreSQL (skipped when not reachable)."""
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    with session_scope() as s:
        create_integration(session=s, platform="shopify", display_name="Intake", shop_domain=SHOP)
    return str(request.param)


def delivery(webhook_id: str, product: int = 1) -> Delivery:
    return Delivery("shopify", webhook_id, "products/update", SHOP, {"id": product})


def stored_webhook_ids() -> list[str]:
    with session_scope() as s:
        return list(s.exec(select(WebhookEvent.webhook_id)).all())


async def test_a_burst_is_stored_in_few_transactions_each_webhook_id_once(any_db: str) -> None:
    group = GroupCommit()
    ids = [str(uuid.uuid4()) for _ in range(120)]
    redelivered = ids[:10]  # Shopify sends some again while the first copies are stored
    results = await asyncio.gather(*(group.add(delivery(i)) for i in ids + redelivered))
    new, again = results[:120], results[120:]
    assert all(isinstance(event_id, uuid.UUID) for event_id in new)
    assert again == [None] * 10  # acknowledged, not stored twice
    assert sorted(stored_webhook_ids()) == sorted(ids)
    assert group.stored == 120
    assert group.groups < 20  # 130 deliveries, far fewer commits
    with session_scope() as s:
        rows = s.exec(select(WebhookEvent)).all()
    assert {(r.status, r.attempts, r.shop, r.integration_id is not None) for r in rows} == {
        ("received", 0, SHOP, True)
    }
    # Every column as sent (on PostgreSQL the group travels as one array per column).
    assert {(r.platform, r.topic, repr(r.payload)) for r in rows} == {
        ("shopify", "products/update", "{'id': 1}")
    }
    assert all(r.received_at is not None for r in rows)
    assert {r.id for r in rows} == set(new)


async def test_each_delivery_names_the_integration_of_its_shop(any_db: str) -> None:
    """Looked up per group on SQLite, inside the insert on PostgreSQL: the same answer."""
    with session_scope() as s:
        other = create_integration(
            session=s, platform="shopify", display_name="Other", shop_domain="other.myshopify.com"
        ).id
    sent = {
        "w-intake": Delivery("shopify", "w-intake", "products/update", SHOP, {"id": 1}),
        "w-other": Delivery("shopify", "w-other", "orders/create", "other.myshopify.com", {}),
        "w-upper": Delivery("shopify", "w-upper", "products/update", SHOP.upper(), {"id": 2}),
        "w-unknown": Delivery("shopify", "w-unknown", "products/update", "nobody.myshopify.com",
                              {"id": 3}),
    }  # fmt: skip
    group = GroupCommit()
    await asyncio.gather(*(group.add(d) for d in sent.values()))
    with session_scope() as s:
        intake = s.exec(
            select(WebhookEvent.integration_id).where(WebhookEvent.webhook_id == "w-intake")
        ).one()
        found = dict(s.exec(select(WebhookEvent.webhook_id, WebhookEvent.integration_id)).all())
    assert intake is not None
    assert found == {"w-intake": intake, "w-other": other, "w-upper": intake, "w-unknown": None}


async def test_a_redelivery_of_a_stored_webhook_is_not_stored_again(any_db: str) -> None:
    body = json.dumps({"id": 7}).encode()
    first = await shopify_webhooks.persist(
        webhook_id="same-id", topic="products/update", shop=SHOP, body=body
    )
    again = await shopify_webhooks.persist(
        webhook_id="same-id", topic="products/update", shop=SHOP, body=body
    )
    assert first is not None and again is None
    assert stored_webhook_ids() == ["same-id"]


async def test_no_delivery_is_answered_before_its_row_is_committed(any_db: str) -> None:
    """Each caller returns only once another connection can read its row: a crash right after
    the 200 loses nothing."""
    committed_at_return: list[bool] = []

    async def deliver(webhook_id: str) -> None:
        event_id = await webhook_intake.group_commit().add(delivery(webhook_id))
        with session_scope() as s:  # a connection of its own: sees committed rows only
            committed_at_return.append(s.get(WebhookEvent, event_id) is not None)

    await asyncio.gather(*(deliver(str(uuid.uuid4())) for _ in range(40)))
    assert committed_at_return == [True] * 40


async def test_a_group_the_database_refuses_fails_every_request_of_it(any_db: str) -> None:
    """Nothing of a failed group is stored, and every request of it is told (it answers an
    error, so Shopify sends it again); the next group is stored."""
    refused = True

    def store(session: Session, deliveries: list[Delivery]) -> list[uuid.UUID | None]:
        ids = store_deliveries(session, deliveries)
        if refused:
            raise sa.exc.OperationalError("INSERT", {}, Exception("database went away"))
        return ids

    group = GroupCommit(store)
    results = await asyncio.gather(
        *(group.add(delivery(str(uuid.uuid4()))) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, sa.exc.OperationalError) for r in results)
    assert stored_webhook_ids() == []  # rolled back as a whole
    refused = False
    assert await group.add(delivery("after-the-outage")) is not None
    assert stored_webhook_ids() == ["after-the-outage"]
