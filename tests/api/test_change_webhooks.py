"""Change webhooks: a consumer registers a URL for an integration's orders, gets a signed
"records changed" notice with the cursor range (batched: one per sweep), is retried with
growing delays while it fails, and reads the changes from the feed with the cursors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from dashboard.db import session_scope
from dashboard.models import ChangeWebhook, ChangeWebhookDelivery
from dashboard.services import change_webhooks
from dashboard.services.alerts import sign
from dashboard.services.records import upsert_records
from tests.api.conftest import MakeKey, bearer, new_integration
from tests.api.test_change_feed import order


def store(integration_id: object, *records: object) -> None:
    with session_scope() as session:
        upsert_records(session=session, integration_id=integration_id, records=list(records))  # type: ignore[arg-type]


async def test_signed_batched_notices_retried_then_read_from_the_feed(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = new_integration()
    key = make_key(scopes=["records:read"])
    store(integration_id, order(1, 1))  # before the webhook: read from the feed, not announced
    url = f"/api/v1/integrations/{integration_id}/webhooks"
    registered = await hub.post(
        url, json={"kind": "orders", "url": "https://erp.example.com/hooks/hub"},
        headers=bearer(key),
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    secret = registered.json()["secret"]
    listed = (await hub.get(url, headers=bearer(key))).json()["webhooks"]
    assert [w["url"] for w in listed] == ["https://erp.example.com/hooks/hub"]
    assert "secret" not in listed[0]
    with session_scope() as session:
        stored = " ".join(str(v) for v in session.execute(sa.select(ChangeWebhook)).one())
    assert secret not in stored  # encrypted by the vault

    store(integration_id, order(2, 2), order(3, 3))
    store(integration_id, order(1, 4, deleted=True))
    received: list[httpx.Request] = []
    answers = iter([500, 200])

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(next(answers))

    transport = httpx.MockTransport(receiver)
    assert await change_webhooks.sweep(transport=transport) == 0  # the receiver failed
    with session_scope() as session:
        delivery = session.execute(sa.select(ChangeWebhookDelivery)).scalar_one()
        assert delivery.attempts == 1 and delivery.last_status == 500
        wait = delivery.next_attempt_at - datetime.now(UTC)
        assert timedelta(seconds=5) < wait <= change_webhooks.FIRST_RETRY
    assert await change_webhooks.sweep(transport=transport) == 0  # not due yet: no attempt
    assert len(received) == 1
    with session_scope() as session:
        session.execute(sa.update(ChangeWebhookDelivery).values(next_attempt_at=datetime.now(UTC)))
    assert await change_webhooks.sweep(transport=transport) == 1
    first, second = received
    assert first.content == second.content  # the same notice, retried
    notice = json.loads(second.content)
    assert notice["type"] == "records.changed" and notice["kind"] == "order"
    timestamp = int(second.headers["X-Hub-Timestamp"])
    assert second.headers["X-Hub-Signature-256"] == sign(
        second.content, secret=secret, timestamp=timestamp
    )
    # One notice for both batches; reading from its first cursor gives exactly them.
    page = (
        await hub.get(
            f"/api/v1/integrations/{integration_id}/records/orders",
            params={"since": notice["after_cursor"]}, headers=bearer(key),
        )
    ).json()  # fmt: skip
    assert [(r["id"], r["deleted"]) for r in page["records"]] == [
        ("o2", False), ("o3", False), ("o1", True)
    ]  # fmt: skip
    assert page["next_cursor"] == notice["until_cursor"]
    assert await change_webhooks.sweep(transport=transport) == 0  # nothing new: no notice


async def test_a_bad_url_is_refused_and_a_webhook_can_be_removed(
    hub_db: object, hub: httpx.AsyncClient, make_key: MakeKey
) -> None:
    integration_id = new_integration()
    key = make_key(scopes=["records:read"])
    url = f"/api/v1/integrations/{integration_id}/webhooks"
    for bad in ("ftp://erp.example.com/x", "https://user:pw@erp.example.com/x"):
        refused = await hub.post(url, json={"kind": "orders", "url": bad}, headers=bearer(key))
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_webhook"
    made = await hub.post(
        url, json={"kind": "customers", "url": "https://erp.example.com/c"}, headers=bearer(key)
    )
    webhook_id = made.json()["id"]
    assert (await hub.delete(f"{url}/{webhook_id}", headers=bearer(key))).status_code == 204
    assert (await hub.delete(f"{url}/{webhook_id}", headers=bearer(key))).status_code == 404
    assert (await hub.get(url, headers=bearer(key))).json()["webhooks"] == []
