"""Shopify webhooks act only on what Shopify signed (issue 12, item 2 and 4).

The HMAC covers the body, not the X-Shopify-Topic or X-Shopify-Shop-Domain headers. An
attacker holding one genuine signed body (their own shop's privacy request, say) re-sends it
under a destructive topic and a victim's shop with a fresh webhook id. Each test drives the
hub's real webhook route and asserts what the victim would see: their records, their
integration's status, and the audit log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
import sqlalchemy as sa
from sqlmodel import Session, col, func, select
from starlette.applications import Starlette

from connectors.base import RecordKind, StoredCredential, UnifiedRecord
from dashboard.api import build_api
from dashboard.api.shopify import MAX_WEBHOOK_BYTES
from dashboard.db import session_scope
from dashboard.models import RECORD_TABLES, AuditLog, Credential, Integration, IntegrationStatus
from dashboard.services import shopify_webhooks
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.records import upsert_records
from dashboard.settings import get_settings
from tests.conftest import reset_caches

VICTIM = "victim.myshopify.com"
ATTACKER = "attacker.myshopify.com"
SHOPIFY = "http://shopify.test"  # the hub's Shopify base URL in these tests (respx answers)
GRAPHQL = f"{SHOPIFY}/{VICTIM}/admin/api/2026-10/graphql.json"
WEBHOOK = "/api/webhooks/shopify"
UNINSTALLED = "integration.uninstalled"


def seed_shop(session: Session, shop: str, *, rows: int = 20) -> uuid.UUID:
    """A connected shop with a token and ``rows`` each of products, orders and customers."""
    integration = create_integration(
        session=session, platform="shopify", display_name=shop, shop_domain=shop
    )
    save_credential(
        session=session,
        integration_id=integration.id,
        credential=StoredCredential("access_token", f"shpat_{shop}", ["read_products"]),
    )
    for kind in (RecordKind.PRODUCT, RecordKind.ORDER, RecordKind.CUSTOMER):  # a kind a batch
        records = [
            UnifiedRecord(
                kind,
                f"gid://shopify/{kind.value.capitalize()}/{n}",
                {"title": "Mug"} if kind is RecordKind.PRODUCT else {"email": f"c{n}@example.com"},
                {},
            )
            for n in range(1, rows + 1)
        ]
        stored = upsert_records(session=session, integration_id=integration.id, records=records)
        assert not stored.errors
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    return integration.id


def uninstall(integration_id: uuid.UUID, *, ago: timedelta) -> None:
    """The shop removed the app ``ago`` and the hub recorded it then."""
    with session_scope() as s:
        integration = s.get(Integration, integration_id)
        assert integration is not None
        integration.status = IntegrationStatus.DISCONNECTED.value
        s.add(integration)
        s.add(
            AuditLog(
                actor="shopify",
                action=UNINSTALLED,
                target=str(integration_id),
                at=datetime.now(UTC) - ago,
            )
        )


def row_counts() -> dict[str, int]:
    """Rows per record table, integrations (by status) and credentials."""
    with session_scope() as s:
        counts = {
            name: int(s.exec(select(func.count()).select_from(table)).one())
            for name, table in RECORD_TABLES.items()
        }
        counts["credentials"] = int(s.exec(select(func.count()).select_from(Credential)).one())
        for status, in_status in s.exec(
            select(Integration.status, func.count()).group_by(Integration.status)
        ).all():
            counts[f"integrations.{status}"] = int(in_status)
        return counts


def records_of(integration_id: uuid.UUID) -> int:
    """The integration's live records (an erased one stays only as a tombstone for the Hub
    API's change feed, deleted and emptied: tests/test_shopify_compliance.py reads those)."""
    with session_scope() as s:
        return sum(
            int(
                s.exec(
                    select(func.count())
                    .select_from(table)
                    .where(
                        table.integration_id == integration_id, col(table.deleted_at).is_(None)
                    )
                ).one()
            )
            for table in RECORD_TABLES.values()
        )


def status_of(integration_id: uuid.UUID) -> str:
    with session_scope() as s:
        integration = s.get(Integration, integration_id)
        assert integration is not None
        return integration.status


def rejections() -> list[AuditLog]:
    with session_scope() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == "webhook.rejected")).all())


def sign(body: bytes) -> str:
    secret = str(get_settings().shopify_client_secret).encode()
    digest = hmac.new(secret, body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def delivery(payload: dict, *, topic: str, shop: str) -> dict:
    """A request as Shopify sends it: the body signed, a fresh webhook id."""
    body = json.dumps(payload).encode()
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        },
    }


def data_request(shop: str) -> dict:
    """A genuine customers/data_request body of ``shop``, as Shopify publishes its shape."""
    return {
        "shop_id": 954889,
        "shop_domain": shop,
        "orders_requested": [1, 2],
        "customer": {"id": 1, "email": "john@example.com", "phone": "555-625-1199"},
        "data_request": {"id": 9999},
    }


def shop_object(shop: str) -> dict:
    """The Shop object an app/uninstalled body is."""
    return {"id": 954889, "name": "Shop", "domain": shop, "myshopify_domain": shop}


@pytest.fixture
def hub_env_shopify(hub_env: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", SHOPIFY)
    reset_caches()


@pytest.fixture
def shops(hub_env_shopify: None, hub_db: sa.Engine) -> Iterator[dict[str, uuid.UUID]]:
    with session_scope() as s:
        yield {VICTIM: seed_shop(s, VICTIM), ATTACKER: seed_shop(s, ATTACKER, rows=2)}


@pytest.fixture
async def hub() -> AsyncIterator[httpx.AsyncClient]:
    """The hub's HTTP app; app errors come back as 500 answers, as a client would see."""
    transport = httpx.ASGITransport(app=build_api(Starlette()), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


async def post(hub: httpx.AsyncClient, request: dict) -> httpx.Response:
    """POST a delivery and let the hub apply what it stored."""
    response = await hub.post(WEBHOOK, **request)
    await asyncio.gather(*shopify_webhooks._tasks)
    return response


@pytest.mark.parametrize("victim_state", ["connected", "uninstalled 49 h ago"])
async def test_a_data_request_resent_as_shop_redact_for_another_shop_erases_nothing(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient, victim_state: str
) -> None:
    if victim_state != "connected":
        uninstall(shops[VICTIM], ago=timedelta(hours=49))
    before = row_counts()
    forged = delivery(data_request(ATTACKER), topic="shop/redact", shop=VICTIM)
    assert (await post(hub, forged)).status_code == 200  # Shopify must not retry it
    assert row_counts() == before
    assert records_of(shops[VICTIM]) == 60
    (rejected,) = rejections()
    assert rejected.target == VICTIM and rejected.context["topic"] == "shop/redact"


async def test_a_data_request_resent_as_app_uninstalled_disconnects_nothing(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient
) -> None:
    with respx.mock(assert_all_called=False) as platform:
        shop_query = platform.post(GRAPHQL).respond(401, json={"errors": "Invalid token"})
        forged = delivery(data_request(ATTACKER), topic="app/uninstalled", shop=VICTIM)
        assert (await post(hub, forged)).status_code == 200
        assert not shop_query.called  # refused on the body alone
    assert status_of(shops[VICTIM]) == "connected"
    assert row_counts()["credentials"] == 2
    assert [r.context["topic"] for r in rejections()] == ["app/uninstalled"]


async def test_an_uninstall_whose_token_still_works_disconnects_nothing(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient
) -> None:
    """A genuine app/uninstalled body of the victim (replayed from an earlier uninstall, say)
    while the hub's token still works: the shop has the app, so it stays connected."""
    shop = {"shop": {"name": "Victim", "email": None, "myshopifyDomain": VICTIM}}
    with respx.mock:
        respx.post(GRAPHQL).respond(200, json={"data": shop})
        replayed = delivery(shop_object(VICTIM), topic="app/uninstalled", shop=VICTIM)
        assert (await post(hub, replayed)).status_code == 200
    assert status_of(shops[VICTIM]) == "connected"
    assert row_counts()["credentials"] == 2
    assert "still works" in rejections()[0].context["reason"]

    with respx.mock:  # the merchant really removes the app: Shopify refuses the token
        respx.post(GRAPHQL).respond(401, json={"errors": "[API] Invalid API key or access token"})
        genuine = delivery(shop_object(VICTIM), topic="app/uninstalled", shop=VICTIM)
        assert (await post(hub, genuine)).status_code == 200
    assert status_of(shops[VICTIM]) == "disconnected"
    assert row_counts()["credentials"] == 1  # the victim's token is destroyed


async def test_shop_redact_erases_only_a_shop_uninstalled_48_hours_ago(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient
) -> None:
    redact = {"shop_id": 954889, "shop_domain": VICTIM}
    uninstall(shops[VICTIM], ago=timedelta(hours=1))
    assert (await post(hub, delivery(redact, topic="shop/redact", shop=VICTIM))).status_code == 200
    assert records_of(shops[VICTIM]) == 60
    assert "less than" in rejections()[0].context["reason"]

    with session_scope() as s:  # 48 hours pass
        s.execute(
            sa.update(AuditLog)
            .where(AuditLog.action == UNINSTALLED)
            .values(at=datetime.now(UTC) - timedelta(hours=49))
        )
    assert (await post(hub, delivery(redact, topic="shop/redact", shop=VICTIM))).status_code == 200
    assert records_of(shops[VICTIM]) == 0
    assert records_of(shops[ATTACKER]) == 6  # another shop's records are untouched


@pytest.mark.parametrize(
    ("topic", "payload", "shop"),
    [
        # a customers/redact body re-sent for another shop's header
        ("customers/redact", {**data_request(ATTACKER), "orders_to_redact": [1]}, VICTIM),
        # a customers/redact body (right shop) re-sent as shop/redact
        (
            "shop/redact",
            {"shop_id": 1, "shop_domain": VICTIM, "customer": {"id": 1}, "orders_to_redact": [1]},
            VICTIM,
        ),
        # a product update re-sent as a delete
        (
            "products/delete",
            {"id": 1, "admin_graphql_api_id": "gid://shopify/Product/1", "title": "Mug"},
            VICTIM,
        ),
        # a shop the hub does not know
        ("customers/data_request", data_request("nobody.myshopify.com"), "nobody.myshopify.com"),
    ],
)
async def test_bodies_that_do_not_fit_the_headers_change_nothing(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient, topic: str, payload: dict, shop: str
) -> None:
    before = row_counts()
    with session_scope() as s:
        deleted_before = s.exec(
            select(func.count())
            .select_from(RECORD_TABLES["product"])
            .where(RECORD_TABLES["product"].deleted_at.is_not(None))
        ).one()
    assert (await post(hub, delivery(payload, topic=topic, shop=shop))).status_code == 200
    assert row_counts() == before
    with session_scope() as s:
        deleted_after = s.exec(
            select(func.count())
            .select_from(RECORD_TABLES["product"])
            .where(RECORD_TABLES["product"].deleted_at.is_not(None))
        ).one()
    assert deleted_after == deleted_before == 0
    assert [r.context["topic"] for r in rejections()] == [topic]


# --- bodies read as a stream, cut at the limit ---------------------------------------------

CHUNK = 64 * 1024


async def test_an_oversized_chunked_body_is_cut_without_reading_it_all(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient
) -> None:
    """300 MB sent chunked (no Content-Length): 413 after about the limit, not 300 MB."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(300 * 1024 * 1024 // CHUNK):
            sent += 1
            yield b"x" * CHUNK

    headers = {"X-Shopify-Topic": "shop/redact", "X-Shopify-Webhook-Id": "big"}
    response = await hub.post(WEBHOOK, content=body(), headers=headers)
    assert response.status_code == 413
    assert sent <= MAX_WEBHOOK_BYTES // CHUNK + 2


async def test_a_false_content_length_does_not_let_a_larger_body_through(
    shops: dict[str, uuid.UUID], hub: httpx.AsyncClient
) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield b"x" * CHUNK

    headers = {"Content-Length": "10", "X-Shopify-Topic": "shop/redact"}
    response = await hub.post(WEBHOOK, content=body(), headers=headers)
    assert response.status_code == 413
    assert sent <= MAX_WEBHOOK_BYTES // CHUNK + 2
