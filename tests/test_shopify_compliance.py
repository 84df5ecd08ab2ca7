"""Shopify's mandatory privacy webhooks erase what they name: customers/redact the customer
and the personal data on their orders, shop/redact (48 h after an uninstall) every record of
the shop. Bodies have the shapes Shopify publishes for each topic."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.base import RecordKind, UnifiedRecord
from dashboard.db import session_scope
from dashboard.models import (
    RECORD_TABLES,
    AuditLog,
    Customer,
    Integration,
    IntegrationStatus,
    Order,
    Product,
    WebhookEvent,
)
from dashboard.services import shopify_webhooks
from dashboard.services.integrations import create_integration, set_integration_status
from dashboard.services.records import upsert_records
from dashboard.services.shopify_webhook_binding import UNINSTALLED_ACTION

SHOP = "privacy.myshopify.com"
SHOP_ID = 548380009
ALICE = "gid://shopify/Customer/7"


def seed(session: Session) -> uuid.UUID:
    integration = create_integration(
        session=session, platform="shopify", display_name="Privacy", shop_domain=SHOP
    )
    alice = {"email": "alice@example.com", "customer_external_id": ALICE}
    records = [
        UnifiedRecord(
            RecordKind.CUSTOMER,
            ALICE,
            {"email": "alice@example.com", "first_name": "Alice", "last_name": "Liddell"},
            {"id": 7, "email": "alice@example.com", "lastName": "Liddell"},
        ),
        UnifiedRecord(RecordKind.CUSTOMER, "gid://shopify/Customer/8", {"email": "b@x.com"}, {}),
        UnifiedRecord(RecordKind.ORDER, "gid://shopify/Order/1", alice, dict(alice)),
        UnifiedRecord(RecordKind.PRODUCT, "gid://shopify/Product/1", {"title": "Mug"}, {}),
    ]
    upsert_records(session=session, integration_id=integration.id, records=records)
    session.commit()
    return integration.id


async def deliver(topic: str, payload: dict) -> None:
    event_id = await shopify_webhooks.persist(
        webhook_id=str(uuid.uuid4()), topic=topic, shop=SHOP, body=json.dumps(payload).encode()
    )
    assert event_id is not None
    await shopify_webhooks.process(event_id)


def remaining_text(row: object) -> str:
    """Everything a stored row still holds, as text, to search for personal data."""
    return json.dumps(row.model_dump(), default=str).lower()  # type: ignore[attr-defined]


def uninstalled(integration_id: uuid.UUID, *, ago: timedelta) -> None:
    """The shop removed the app ``ago``: disconnected, its uninstall recorded then."""
    with session_scope() as s:
        set_integration_status(
            session=s, integration_id=integration_id, status=IntegrationStatus.DISCONNECTED
        )
        s.add(AuditLog(actor="shopify", action=UNINSTALLED_ACTION, target=str(integration_id),
                       at=datetime.now(UTC) - ago))  # fmt: skip


async def test_customer_redact_removes_the_customer_and_their_order_data(session) -> None:
    integration_id = seed(session)
    await deliver(
        "customers/redact",
        {"shop_id": SHOP_ID, "shop_domain": SHOP, "customer": {"id": 7,
         "email": "alice@example.com", "phone": "+15550100"}, "orders_to_redact": []},
    )  # fmt: skip
    with session_scope() as s:
        live = s.exec(select(Customer).where(col(Customer.deleted_at).is_(None))).all()
        assert {c.email for c in live} == {"b@x.com"}
        # What stays of Alice is a tombstone for the feed: her id, nothing she told the shop.
        tombstone = s.exec(select(Customer).where(Customer.external_id == ALICE)).one()
        assert tombstone.deleted_at is not None and tombstone.change_seq is not None
        assert "alice" not in remaining_text(tombstone)
        assert "liddell" not in remaining_text(tombstone)
        order = s.exec(select(Order)).one()
        assert order.email is None and "alice" not in json.dumps(order.raw)
        assert s.exec(select(Product).where(Product.integration_id == integration_id)).one()
        audit = s.exec(
            select(AuditLog).where(AuditLog.action == "compliance.customers/redact")
        ).one()
        assert audit.context["redacted_rows"] == 2
        # The request itself, once applied, keeps only the ids it named.
        request = s.exec(select(WebhookEvent).where(WebhookEvent.topic == "customers/redact")).one()
        assert "alice" not in json.dumps(request.payload) and "5550100" not in json.dumps(
            request.payload
        )
        assert request.payload["customer"] == {"id": 7}


async def test_shop_redact_removes_every_record_of_a_shop_uninstalled_48_hours_ago(
    session,
) -> None:
    uninstalled(seed(session), ago=timedelta(hours=48, minutes=1))
    await deliver("shop/redact", {"shop_id": SHOP_ID, "shop_domain": SHOP})
    with session_scope() as s:
        for table in RECORD_TABLES.values():
            rows = s.exec(select(table)).all()
            # Tombstones for the feed, with nothing of the shop's data but ids.
            assert all(row.deleted_at is not None and row.raw == {} for row in rows)
            assert not any(
                word in remaining_text(row) for row in rows for word in ("alice", "b@x", "mug")
            ), table.__name__


async def test_privacy_requests_from_the_sandbox_reach_the_hub_and_erase_synced_data(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end over real HTTP: the sandbox sends the privacy topics to the app's compliance
    URL (the hub's webhook route), signed; the hub erases what they name, and a later sync
    does not bring the erased customer back. shop/redact erases the shop only once the shop
    has uninstalled the app (app/uninstalled, confirmed by the hub) 48 hours before."""
    from starlette.applications import Starlette

    from connectors.shopify.client import _throttles
    from dashboard.api import build_api
    from tests.conftest import reset_caches
    from tests.sandbox_server import free_port, running_sandbox, serving

    shop = "privacy-e2e.myshopify.com"
    _throttles.clear()
    monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "sandbox-shopify-client-id")
    # The secret: the one the hub derives from its sandbox token, which the sandbox shares.
    reset_caches()
    port = free_port()
    with running_sandbox(seed=9, time_scale=50) as (base, _app):
        # The hub's own calls (confirming an uninstall) go to this sandbox.
        monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
        reset_caches()
        with serving(build_api(Starlette()), port):
            await privacy_requests_end_to_end(session, base, shop, port)
    _throttles.clear()


async def privacy_requests_end_to_end(session: Session, base: str, shop: str, port: int) -> None:
    """Connect and sync ``shop``, then let the sandbox send each privacy topic to the hub."""
    from connectors.shopify.connector import ShopifyConnector
    from dashboard.services.credentials import DbCredentialStore
    from dashboard.settings import get_settings
    from tests.sandbox_server import control_headers
    from tests.test_shopify_sync import connect, engine_for, stored_checksums, truth

    integration_id = connect(session, base, shop, products=5, orders=40, customers=6)
    engine = engine_for(base)
    await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    assert stored_checksums(integration_id)["customers"]["count"] == 6
    compliance_url = f"http://127.0.0.1:{port}/api/webhooks/shopify"
    async with httpx.AsyncClient(
        base_url=f"{base}/_sandbox/shopify", headers=control_headers(base)
    ) as control:
        no_url = await control.post(f"/shops/{shop}/compliance", json={"topic": "shop/redact"})
        assert no_url.status_code == 400 and "compliance_url" in no_url.json()["error"]
        configured = await control.put("/app", json={"compliance_url": compliance_url})
        assert configured.json()["compliance_url"] == compliance_url
        bad = await control.post(
            f"/shops/{shop}/compliance", json={"topic": "customers/forget", "customer": 1}
        )
        assert bad.status_code == 400 and "topic must be one of" in bad.json()["error"]

        asked = await control.post(
            f"/shops/{shop}/compliance", json={"topic": "customers/data_request", "customer": 2}
        )
        assert asked.status_code == 202
        request_audit = await audit_entry("compliance.customers/data_request")
        assert request_audit.context["customer_id"] == "gid://shopify/Customer/7000002"
        assert request_audit.context["orders"] == len(asked.json()["payload"]["orders_requested"])

        erased = await control.post(
            f"/shops/{shop}/compliance", json={"topic": "customers/redact", "customer": 2}
        )
        orders = [f"gid://shopify/Order/{n}" for n in erased.json()["payload"]["orders_to_redact"]]
        assert orders, "the seeded customer has orders to redact"
        await audit_entry("compliance.customers/redact")
        with session_scope() as s:
            live = select(Customer).where(col(Customer.deleted_at).is_(None))
            gids = {c.external_id for c in s.exec(live).all()}
            assert "gid://shopify/Customer/7000002" not in gids and len(gids) == 5
            redacted = s.exec(select(Order).where(col(Order.external_id).in_(orders))).all()
            assert len(redacted) == len(orders)
            assert all(o.email is None and o.raw == {} for o in redacted)

        # The next sync keeps the customer erased: the shop erased them too.
        await engine.request_sync(integration_id=integration_id, full_refresh=True)
        await engine.wait()
        assert stored_checksums(integration_id)["customers"] == truth(base, shop)["customers"]
        with session_scope() as s:
            assert len(s.exec(live).all()) == 5
            tombstone = s.exec(
                select(Customer).where(Customer.external_id == "gid://shopify/Customer/7000002")
            ).one()
            assert tombstone.deleted_at is not None and tombstone.email is None
            assert tombstone.raw == {}
            again = s.exec(select(Order).where(col(Order.external_id).in_(orders))).all()
            assert all(o.email is None for o in again)

        # While the shop has the app, a shop/redact is not Shopify's: nothing is erased.
        early = await control.post(f"/shops/{shop}/compliance", json={"topic": "shop/redact"})
        assert early.status_code == 202
        refused = await audit_entry("webhook.rejected")
        assert refused.context["topic"] == "shop/redact"
        assert stored_checksums(integration_id)["products"]["count"] == 5

        # The merchant removes the app: app/uninstalled reaches the hub, which confirms it
        # (its token is refused now) and disconnects the shop.
        hub_connector = ShopifyConnector.from_settings(get_settings().model_dump())
        await hub_connector.subscribe_webhooks(
            shop, DbCredentialStore(integration_id), compliance_url
        )
        assert (await control.post(f"/shops/{shop}/revoke")).status_code == 200
        uninstall = await audit_entry(UNINSTALLED_ACTION)
        with session_scope() as s:
            integration = s.get(Integration, integration_id)
            assert integration is not None and integration.status == "disconnected"
            # 48 hours pass.
            s.execute(
                sa.update(AuditLog)
                .where(AuditLog.id == uninstall.id)
                .values(at=datetime.now(UTC) - timedelta(hours=48, minutes=1))
            )

        shop_gone = await control.post(f"/shops/{shop}/compliance", json={"topic": "shop/redact"})
        assert shop_gone.status_code == 202
        await audit_entry("compliance.shop/redact")
        with session_scope() as s:
            for table in RECORD_TABLES.values():
                rows = s.exec(select(table)).all()
                assert all(r.deleted_at is not None and r.raw == {} for r in rows), table.__name__
                # Only ids remain: no email, name or address of the shop's customers.
                assert not any("@" in remaining_text(r) for r in rows), table.__name__


async def audit_entry(action: str, patience: float = 10.0) -> AuditLog:
    """The audit entry the hub writes once it has processed a delivery (in its own thread)."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        with session_scope() as s:
            entry = s.exec(select(AuditLog).where(AuditLog.action == action)).first()
            if entry is not None:
                return entry
        assert asyncio.get_running_loop().time() < deadline, f"no {action} within {patience} s"
        await asyncio.sleep(0.1)
