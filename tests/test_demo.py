"""make run's demo profile: an empty hub connects the sandbox's demo shops and seller, and
they sync; a hub that has integrations is left alone."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session, SQLModel, select
from starlette.applications import Starlette

from connectors.amazon.client import BUCKETS
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import Integration, Order, Product, WebhookSubscription
from dashboard.services import sync
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.demo import seed_demo_integrations
from dashboard.settings import get_settings
from tests.conftest import reset_caches
from tests.sandbox_server import free_port, serving
from tests.test_shopify_compliance import audit_entry


@pytest.fixture
def demo_hub(session: Session, monkeypatch: pytest.MonkeyPatch):
    port = free_port()
    monkeypatch.setenv("HUB_PUBLIC_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HUB_SANDBOX", "1")
    monkeypatch.setenv("HUB_SANDBOX_DEMO", "1")
    monkeypatch.setenv("HUB_SANDBOX_TIME_SCALE", "50")
    monkeypatch.setenv("HUB_ENV", "test")
    for name in ("HUB_SHOPIFY_BASE_URL", "HUB_AMAZON_BASE_URL", "HUB_SHOPIFY_CLIENT_ID",
                 "HUB_SHOPIFY_CLIENT_SECRET", "HUB_AMAZON_CLIENT_ID", "HUB_AMAZON_CLIENT_SECRET",
                 "HUB_AMAZON_APP_ID"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    _throttles.clear()
    BUCKETS.buckets.clear()
    SQLModel.metadata.create_all(get_engine())
    sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
    with serving(build_api(Starlette()), port):
        yield
    sync.set_engine(None)


async def test_empty_hub_gets_connected_demo_integrations_that_sync(demo_hub) -> None:
    assert await seed_demo_integrations() == 3
    await sync.get_engine().wait()
    with session_scope() as s:
        integrations = {i.display_name: i for i in s.exec(select(Integration)).all()}
        assert set(integrations) == {
            "Demo Outdoor (Shopify)", "Demo Kitchen (Shopify)", "Demo Outdoor Co. (Amazon)"
        }  # fmt: skip
        assert {i.status for i in integrations.values()} <= {"connected", "syncing"}
        amazon = integrations["Demo Outdoor Co. (Amazon)"]
        assert amazon.selling_partner_id == "A1DEMOSELLER0NA" and amazon.marketplaces
        outdoor = integrations["Demo Outdoor (Shopify)"]
        assert outdoor.shop_info["name"]
        assert s.exec(select(WebhookSubscription)).first() is not None
        products = s.exec(select(Product).where(Product.integration_id == outdoor.id)).all()
        assert len(products) == 1200  # the demo shop's catalog, synced
        assert s.exec(select(Order).where(Order.integration_id == amazon.id)).first()
    # Expiring tokens, stored as the hub's own callback stores them: the Status tab shows when
    # the token expires, and the connector refreshes ahead of it.
    access = await DbCredentialStore(outdoor.id).get("access_token")
    assert access is not None and access.expires_at is not None
    assert await DbCredentialStore(outdoor.id).get("refresh_token") is not None
    # A second start (or a second worker) adds nothing.
    assert await seed_demo_integrations() == 0

    # The mounted sandbox's Shopify app has this hub's webhook route as its compliance URL, so
    # a demo user can try a customer data request end to end.
    base = f"{get_settings().public_url}/sandbox/_sandbox/shopify"
    async with httpx.AsyncClient(base_url=base) as control:
        app = await control.put("/app", json={})
        assert app.json()["compliance_url"] == f"{get_settings().public_url}/api/webhooks/shopify"
        asked = await control.post(
            "/shops/demo-kitchen.myshopify.com/compliance",
            json={"topic": "customers/data_request", "customer": 1},
        )
        assert asked.status_code == 202
    entry = await audit_entry("compliance.customers/data_request")
    assert entry.target == "demo-kitchen.myshopify.com"
