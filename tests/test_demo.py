"""make run's demo profile: an empty hub connects the sandbox's demo shops and seller, and
they sync; a hub that has integrations is left alone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session, SQLModel, col, select
from starlette.applications import Starlette

from connectors.amazon.client import BUCKETS
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import Integration, Order, Product, SyncRun, WebhookSubscription
from dashboard.services import sync
from dashboard.services.credentials import DbCredentialStore
from dashboard.services.demo import seed_demo_integrations
from dashboard.settings import get_settings
from tests.conftest import reset_caches
from tests.sandbox_server import free_port, serving
from tests.test_shopify_compliance import audit_entry


@pytest.fixture
def demo_env(session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """make run's settings on a fresh data dir; yields the hub's port."""
    port = free_port()
    monkeypatch.setenv("HUB_PUBLIC_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HUB_SANDBOX", "1")
    monkeypatch.setenv("HUB_SANDBOX_DEMO", "1")
    monkeypatch.setenv("HUB_SANDBOX_TIME_SCALE", "50")
    monkeypatch.setenv("HUB_ENV", "test")
    for name in ("HUB_SHOPIFY_BASE_URL", "HUB_AMAZON_BASE_URL", "HUB_SHOPIFY_CLIENT_ID",
                 "HUB_SHOPIFY_CLIENT_SECRET", "HUB_AMAZON_CLIENT_ID", "HUB_AMAZON_CLIENT_SECRET",
                 "HUB_AMAZON_APP_ID", "HUB_SANDBOX_CONTROL_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    _throttles.clear()
    BUCKETS.buckets.clear()
    SQLModel.metadata.create_all(get_engine())
    sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
    yield port
    sync.set_engine(None)


@pytest.fixture
def demo_hub(demo_env: int) -> Iterator[None]:
    with serving(build_api(Starlette()), demo_env):
        yield


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
        amazon_runs = s.exec(select(SyncRun).where(SyncRun.integration_id == amazon.id)).all()
        assert s.exec(select(Order).where(Order.integration_id == amazon.id)).first(), [
            (run.stream, run.status, run.records_read, run.error) for run in amazon_runs
        ]
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
    # Its control API answers the token make run generated into the data dir, only.
    token = (get_settings().data_dir / "sandbox-control.token").read_text().strip()
    async with httpx.AsyncClient() as anyone:
        assert (await anyone.put(f"{base}/app", json={})).status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as control:
        app = await control.put("/app", json={})
        assert app.json()["compliance_url"] == f"{get_settings().public_url}/api/webhooks/shopify"
        asked = await control.post(
            "/shops/demo-kitchen.myshopify.com/compliance",
            json={"topic": "customers/data_request", "customer": 1},
        )
        assert asked.status_code == 202
    entry = await audit_entry("compliance.customers/data_request")
    assert entry.target == "demo-kitchen.myshopify.com"


async def test_demo_integrations_keep_syncing_after_the_hub_restarts(demo_env: int) -> None:
    """make run, stop, make run: the new sandbox reads the grants the first one gave from
    the data dir, as a real platform would still know them, so nothing needs reconnecting."""
    with serving(build_api(Starlette()), demo_env):
        assert await seed_demo_integrations() == 3
        await sync.get_engine().wait()
    _throttles.clear()  # a new hub process starts with none
    BUCKETS.buckets.clear()
    with serving(build_api(Starlette()), demo_env):  # a new sandbox on the same data dir
        assert await seed_demo_integrations() == 0
        with session_scope() as s:
            integrations = s.exec(select(Integration)).all()
        runs = [  # one stream each is enough to need the tokens
            run_id
            for integration in integrations
            for run_id in await sync.request_sync(
                integration_id=integration.id,
                stream="products" if integration.platform == "shopify" else "orders",
            )
        ]
        await sync.get_engine().wait(runs)
    with session_scope() as s:
        statuses = {i.display_name: i.status for i in s.exec(select(Integration)).all()}
        finished = s.exec(select(SyncRun).where(col(SyncRun.id).in_(runs))).all()
    assert set(statuses.values()) == {"connected"}, statuses
    assert runs and {run.status for run in finished} == {"succeeded"}


async def test_a_demo_shop_whose_connecting_failed_once_is_connected_by_the_next_attempt(
    demo_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy machine one step of connecting can time out: a demo shop left pending would
    never get a webhook. The seeding tries it again, on the same pending integration."""
    from connectors.errors import TransientError
    from connectors.shopify.connector import ShopifyConnector
    from dashboard.services import demo

    subscribe = ShopifyConnector.subscribe_webhooks
    failures = {"demo-outdoor.myshopify.com": 1}

    async def flaky(self, shop, credentials, callback_url, *args, **kwargs):  # type: ignore[no-untyped-def]
        if failures.get(shop):
            failures[shop] -= 1
            raise TransientError(f"POST {shop}/admin/api/2026-10/graphql.json timed out")
        return await subscribe(self, shop, credentials, callback_url, *args, **kwargs)

    monkeypatch.setattr(ShopifyConnector, "subscribe_webhooks", flaky)
    monkeypatch.setattr(demo, "CONNECT_RETRY_AFTER", 0.01)
    assert await seed_demo_integrations() == 3
    await sync.get_engine().stop()  # their first syncs are not what this is about
    assert failures == {"demo-outdoor.myshopify.com": 0}  # it did fail once
    with session_scope() as s:
        outdoor = s.exec(
            select(Integration).where(Integration.display_name == "Demo Outdoor (Shopify)")
        ).all()
        [one] = outdoor  # the pending integration of the failed attempt went on, no second
        assert one.status in ("connected", "syncing")
        topics = s.exec(
            select(WebhookSubscription.topic).where(WebhookSubscription.integration_id == one.id)
        ).all()
        assert "ORDERS_CREATE" in topics


async def test_a_demo_account_connected_by_an_attempt_that_failed_after_still_syncs(
    demo_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queueing the first sync can meet a busy database after the account was connected: the
    next attempt finds it connected and queues that first sync, which would otherwise wait
    for the schedule (the demo test saw a seller with no orders)."""
    from dashboard.services import demo

    engine = sync.get_engine()
    request = engine.request_sync
    failures = {"amazon": 1}

    async def busy(**kwargs):  # type: ignore[no-untyped-def]
        with session_scope() as s:
            platform = s.get(Integration, kwargs["integration_id"]).platform
        if failures.get(platform):
            failures[platform] -= 1
            raise RuntimeError("database is locked")
        return await request(**kwargs)

    monkeypatch.setattr(engine, "request_sync", busy)
    monkeypatch.setattr(demo, "CONNECT_RETRY_AFTER", 0.01)
    assert await seed_demo_integrations() == 3
    await engine.wait()
    assert failures == {"amazon": 0}  # it did fail once
    with session_scope() as s:
        [amazon] = s.exec(select(Integration).where(Integration.platform == "amazon")).all()
        streams = s.exec(select(SyncRun.stream).where(SyncRun.integration_id == amazon.id)).all()
        assert sorted(streams) == ["inventory", "listings", "orders"]
        assert s.exec(select(Order).where(Order.integration_id == amazon.id)).first()
