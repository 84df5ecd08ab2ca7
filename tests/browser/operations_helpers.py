"""What the operations browser tests (tests/browser/test_operations_integrations.py,
tests/browser/test_operations_runs_records.py) and the failure-case ones share: the manager and
viewer they sign in as (the ``users`` and ``manager`` fixtures), the sandbox's control API, tab and
combobox steps, and seeding the hub's database directly, as the sync engine in another process
would write it (10,000 integrations, records)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from dashboard.models import Integration, Product
from tests.browser.conftest import Hub, sign_in

TIMEOUT = 30_000
MANAGER = ("ops-manager@example.com", "manager-password-1")
VIEWER = ("ops-viewer@example.com", "viewer-password-1")


def sandbox(hub: Hub, method: str, path: str, body: dict | None = None) -> dict:
    response = httpx.request(
        method, f"{hub.url}/sandbox/_sandbox{path}", json=body, headers=hub.sandbox_headers(),
        timeout=10,
    )  # fmt: skip
    response.raise_for_status()
    return dict(response.json())


@pytest.fixture(scope="module")
def users(hub: Hub) -> None:
    for (email, password), role in ((MANAGER, "manager"), (VIEWER, "viewer")):
        hub.cli("users", "create", "--email", email, "--role", role, stdin=password + "\n")


@pytest.fixture
def manager(hub: Hub, browser, users):
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, *MANAGER)
    yield page
    context.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.get_by_role("tabpanel").wait_for(timeout=TIMEOUT)


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def _hub_engine(hub: Hub) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{hub.data_dir / 'hub.db'}")


def _seed_integrations(hub: Hub, count: int = 10_000) -> None:
    """10,000 "Seeded store" integrations, once per hub: the tests that need them call this."""
    now = datetime.now(UTC)
    engine = _hub_engine(hub)
    with engine.begin() as connection:
        seeded = connection.execute(
            sa.select(sa.func.count())
            .select_from(Integration)
            .where(Integration.shop_domain == "seeded-00000.myshopify.com")
        ).scalar_one()
        if not seeded:
            connection.execute(
                sa.insert(Integration),
                [
                    {
                        "id": uuid.uuid4(),
                        "platform": "shopify",
                        "display_name": f"Seeded store {index:05d}",
                        "shop_domain": f"seeded-{index:05d}.myshopify.com",
                        "status": "connected" if index % 2 else "pending",
                        "marketplaces": [],
                        "shop_info": {},
                        "created_at": now - timedelta(days=1, seconds=index),
                        "updated_at": now,
                    }
                    for index in range(count)
                ],
            )
    engine.dispose()


def _seeded_id(hub: Hub, index: int) -> uuid.UUID:
    engine = _hub_engine(hub)
    with engine.begin() as connection:
        found = connection.execute(
            sa.select(Integration.id).where(
                Integration.shop_domain == f"seeded-{index:05d}.myshopify.com"
            )
        ).scalar_one()
    engine.dispose()
    return uuid.UUID(str(found))


def _write(hub: Hub, *statements: sa.Executable) -> None:
    """Straight to the hub's database, as the sync engine in another process would."""
    engine = _hub_engine(hub)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)
    engine.dispose()


def _products(integration_id: uuid.UUID, skus: list[str]) -> sa.Executable:
    now = datetime.now(UTC)
    return sa.insert(Product).values([
        {
            "id": uuid.uuid4(), "integration_id": integration_id,
            "external_id": f"gid://shopify/Product/{sku}", "title": f"Product {sku}", "sku": sku,
            "raw": {"sku": sku}, "first_synced_at": now, "synced_at": now,
        }
        for sku in skus
    ])  # fmt: skip
