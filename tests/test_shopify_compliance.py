"""Shopify's mandatory privacy webhooks erase what they name: customers/redact the customer
and the personal data on their orders, shop/redact every record of the shop."""

from __future__ import annotations

import json
import uuid

from sqlmodel import Session, select

from connectors.base import RecordKind, UnifiedRecord
from dashboard.db import session_scope
from dashboard.models import RECORD_TABLES, AuditLog, Customer, Order, Product
from dashboard.services import shopify_webhooks
from dashboard.services.integrations import create_integration
from dashboard.services.records import upsert_records

SHOP = "privacy.myshopify.com"
ALICE = "gid://shopify/Customer/7"


def seed(session: Session) -> uuid.UUID:
    integration = create_integration(
        session=session, platform="shopify", display_name="Privacy", shop_domain=SHOP
    )
    alice = {"email": "alice@example.com", "customer_external_id": ALICE}
    records = [
        UnifiedRecord(RecordKind.CUSTOMER, ALICE, {"email": "alice@example.com"}, {"id": 7}),
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


async def test_customer_redact_removes_the_customer_and_their_order_data(session) -> None:
    integration_id = seed(session)
    await deliver("customers/redact", {"shop_domain": SHOP, "customer": {"id": 7}})
    with session_scope() as s:
        emails = {c.email for c in s.exec(select(Customer)).all()}
        assert emails == {"b@x.com"}
        order = s.exec(select(Order)).one()
        assert order.email is None and "alice" not in json.dumps(order.raw)
        assert s.exec(select(Product).where(Product.integration_id == integration_id)).one()
        audit = s.exec(
            select(AuditLog).where(AuditLog.action == "compliance.customers/redact")
        ).one()
        assert audit.context["redacted_rows"] == 2


async def test_shop_redact_removes_every_record_of_the_shop(session) -> None:
    seed(session)
    await deliver("shop/redact", {"shop_domain": SHOP})
    with session_scope() as s:
        for table in RECORD_TABLES.values():
            assert s.exec(select(table)).first() is None, table.__name__
