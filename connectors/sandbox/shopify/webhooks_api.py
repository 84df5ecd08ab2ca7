"""Webhook subscriptions of the sandbox Admin API and their signed deliveries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from graphql import GraphQLSchema

from connectors.sandbox.shopify.data import iso

log = logging.getLogger("sandbox.shopify.webhooks")
# As Shopify: a delivery not answered 2xx within 5 s (1 s to connect) is retried 8 times over
# 4 hours with exponential backoff (changelog 2024-09-10): about 56 s, 113 s ... 2 h apart,
# in platform seconds. A hub that was busy for a minute still gets the change.
DELIVERY_TIMEOUT = httpx.Timeout(5.0, connect=1.0)
RETRY_DELAYS = tuple(4 * 3600 / 255 * 2**retry for retry in range(8))


@dataclass
class Subscription:
    id: str
    topic: str  # GraphQL enum, e.g. PRODUCTS_UPDATE
    callback_url: str
    created_at: str

    @property
    def rest_topic(self) -> str:
        return rest_topic(self.topic)

    def node(self) -> dict[str, Any]:
        number = int(self.id.rsplit("/", 1)[1])
        return {
            "__typename": "WebhookSubscription", "id": self.id, "legacyResourceId": str(number),
            "topic": self.topic, "callbackUrl": self.callback_url, "uri": self.callback_url,
            "format": "JSON", "createdAt": self.created_at, "updatedAt": self.created_at,
            "includeFields": [], "metafieldNamespaces": [], "metafields": [], "filter": None,
            "name": None, "apiVersion": {"handle": "2026-10", "displayName": "2026-10",
                                         "supported": True},
            "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": self.callback_url},
        }  # fmt: skip


# Topics whose action has more than one word; all others end in a one-word action.
_MULTI_WORD_ACTIONS = {"CUSTOMERS_DATA_REQUEST": "customers/data_request"}


def rest_topic(topic: str) -> str:
    """The X-Shopify-Topic of a GraphQL topic: PRODUCTS_UPDATE -> products/update,
    INVENTORY_LEVELS_UPDATE -> inventory_levels/update, BULK_OPERATIONS_FINISH ->
    bulk_operations/finish."""
    if topic in _MULTI_WORD_ACTIONS:
        return _MULTI_WORD_ACTIONS[topic]
    resource, _, action = topic.rpartition("_")
    return f"{resource.lower()}/{action.lower()}"


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _create(_: Any, info: Any, topic: str, webhookSubscription: dict[str, Any]) -> dict:
    sandbox, shop = info.context["sandbox"], info.context["shop"]
    url = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
    if not url:
        return {
            "webhookSubscription": None,
            "userErrors": [
                {"field": ["webhookSubscription", "uri"], "message": "Address can't be blank"}
            ],
        }
    subscriptions = sandbox.subscriptions.setdefault(shop.shop, {})
    for existing in subscriptions.values():
        if existing.topic == topic and existing.callback_url == url:
            return {
                "webhookSubscription": None,
                "userErrors": [
                    {
                        "field": ["webhookSubscription", "callbackUrl"],
                        "message": "Address for this topic has already been taken",
                    }
                ],
            }
    # One past the highest id yet: a count would give a deleted subscription's successor the
    # id of one still kept (and replace it).
    taken = [int(key.rsplit("/", 1)[1]) for s in sandbox.subscriptions.values() for key in s]
    number = max(taken, default=9_000_000) + 1
    subscription = Subscription(
        f"gid://shopify/WebhookSubscription/{number}", topic, url, iso(sandbox.state.clock.now())
    )
    subscriptions[subscription.id] = subscription
    sandbox.state.remember()
    return {"webhookSubscription": subscription.node(), "userErrors": []}


def _delete(_: Any, info: Any, id: str) -> dict:
    sandbox, shop = info.context["sandbox"], info.context["shop"]
    removed = sandbox.subscriptions.get(shop.shop, {}).pop(id, None)
    if removed is None:
        return {
            "deletedWebhookSubscriptionId": None,
            "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
        }
    sandbox.state.remember()
    return {"deletedWebhookSubscriptionId": id, "userErrors": []}


def _list(_: Any, info: Any, first: int | None = None, after: str | None = None, **__: Any) -> dict:
    from connectors.sandbox.shopify.paging import _connection, decode_cursor

    sandbox, shop = info.context["sandbox"], info.context["shop"]
    items = list(sandbox.subscriptions.get(shop.shop, {}).values())
    clock = sandbox.state.clock.now()
    start = decode_cursor(after)[1] + 1 if after else 0
    return _connection(
        iter(range(start, len(items))), first, lambda i: items[i].node(), lambda i: (clock, i)
    )


def remove(sandbox: Any, shop: str, topics: list[str] | None) -> list[str]:
    """Delete the shop's subscriptions of ``topics`` (all when None), as a person or another
    tool does through the Admin API; returns the removed subscriptions' topics."""
    subscriptions = sandbox.subscriptions.get(shop, {})
    gone = [key for key, s in subscriptions.items() if topics is None or s.topic in topics]
    removed = [subscriptions.pop(key).topic for key in gone]
    if removed:
        sandbox.state.remember()
    return removed


def attach(schema: GraphQLSchema) -> None:
    assert schema.mutation_type is not None and schema.query_type is not None
    schema.mutation_type.fields["webhookSubscriptionCreate"].resolve = _create
    schema.mutation_type.fields["webhookSubscriptionDelete"].resolve = _delete
    schema.query_type.fields["webhookSubscriptions"].resolve = _list


async def deliver(
    *,
    sandbox: Any,
    shop: str,
    topic: str,
    payload: dict[str, Any],
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """POST ``payload`` to every subscription of ``topic`` (GraphQL enum); returns how many.

    Headers as Shopify sends them; failed deliveries are retried with backoff.
    """
    targets = [s for s in sandbox.subscriptions.get(shop, {}).values() if s.topic == topic]
    event_id = str(uuid.uuid4())
    for subscription in targets:
        send(
            sandbox=sandbox, shop=shop, rest_topic=subscription.rest_topic,
            url=subscription.callback_url, payload=payload, event_id=event_id,
            transport=transport,
        )  # fmt: skip
    return len(targets)


def send(
    *,
    sandbox: Any,
    shop: str,
    rest_topic: str,
    url: str,
    payload: dict[str, Any],
    event_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """One signed delivery of ``payload`` to ``url`` in the background, retried on failure.

    Also the path of the privacy compliance topics, which go to the app's configured URL
    rather than to a subscription.
    """
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": rest_topic,
        "X-Shopify-Hmac-Sha256": sign(body, sandbox.shop_app_secret(shop)),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": sandbox.state.clock.now().isoformat(),
        "X-Shopify-API-Version": "2026-10",
    }
    task = asyncio.get_running_loop().create_task(_post(sandbox, url, body, headers, transport))
    sandbox.background.add(task)
    task.add_done_callback(sandbox.background.discard)


async def _post(
    sandbox: Any,
    url: str,
    body: bytes,
    headers: dict[str, str],
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    async with httpx.AsyncClient(transport=transport, timeout=DELIVERY_TIMEOUT) as client:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await sandbox.state.clock.sleep(delay)
            try:
                response = await client.post(url, content=body, headers=headers)
                sandbox.deliveries.append((headers["X-Shopify-Topic"], response.status_code))
                if response.status_code < 300:
                    return
            except httpx.HTTPError as error:
                sandbox.deliveries.append((headers["X-Shopify-Topic"], type(error).__name__))
            log.info("webhook delivery attempt %s to %s failed", attempt + 1, url)
