"""The Runs page's paging and the Records page's integration filter in a browser, both live:
120 runs paged and filtered by integration and status, a new failure seen without a reload;
10,000 integrations to filter records by, records arriving, offered while one is open in the
drawer, and exported as CSV. The tests seed what they need and share one hub.

Connecting, logs, webhooks, roles and the Integrations page:
tests/browser/test_operations_integrations.py.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from dashboard.models import Integration, SyncRun
from tests.browser.conftest import Hub, screenshot
from tests.browser.operations_helpers import (
    TIMEOUT,
    _hub_engine,
    _products,
    _seed_integrations,
    _seeded_id,
    _write,
    choose,
    manager,
    users,
)

__all__ = ["manager", "users"]  # the signed-in manager's page and its module's users

pytestmark = pytest.mark.browser


def _seed_runs(hub: Hub, integration_id: uuid.UUID, count: int, *, failed_every: int = 2) -> None:
    now = datetime.now(UTC)
    engine = _hub_engine(hub)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(SyncRun),
            [
                {
                    "id": uuid.uuid4(),
                    "integration_id": integration_id,
                    "stream": "orders",
                    "status": "failed" if index % failed_every == 0 else "succeeded",
                    "error": "seeded failure" if index % failed_every == 0 else None,
                    "created_at": now - timedelta(minutes=10, seconds=index),
                }
                for index in range(count)
            ],
        )
    engine.dispose()


def test_runs_page_pages_filters_by_integration_and_stays_live(hub: Hub, manager) -> None:
    integration_id = uuid.uuid4()
    engine = sa.create_engine(f"sqlite:///{hub.data_dir / 'hub.db'}")
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Integration),
            [{
                "id": integration_id, "platform": "shopify", "display_name": "Paging store",
                "shop_domain": "paging-store.myshopify.com", "status": "connected",
                "marketplaces": [], "shop_info": {},
                "created_at": datetime.now(UTC), "updated_at": datetime.now(UTC),
            }],
        )  # fmt: skip
    engine.dispose()
    _seed_runs(hub, integration_id, 120)  # 60 failed, 60 succeeded

    page = manager
    page.goto(f"{hub.url}/runs")
    page.get_by_label("Filter by integration").fill("paging-st")
    page.get_by_role("button", name=re.compile("^Paging store")).click(timeout=TIMEOUT)
    page.get_by_text("Integration: Paging store").wait_for(timeout=TIMEOUT)
    page.get_by_text("120 runs").wait_for(timeout=TIMEOUT)
    page.get_by_text("Page 1 of 3").wait_for()
    expect(page.get_by_role("link", name="Paging store")).to_have_count(50)
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    page.get_by_text("Page 2 of 3").wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="Next").click()
    page.get_by_text("Page 3 of 3").wait_for(timeout=TIMEOUT)
    expect(page.get_by_role("link", name="Paging store")).to_have_count(20, timeout=TIMEOUT)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()

    choose(page, "Status", "Failed")  # back to the first page of the narrower list
    page.get_by_text("60 runs").wait_for(timeout=TIMEOUT)
    page.get_by_text("Page 1 of 2").wait_for()
    assert page.get_by_text("seeded failure").count() == 50
    screenshot(page, "runs-paged")

    _seed_runs(hub, integration_id, 1, failed_every=1)  # a new failure, seen without a reload
    page.get_by_text("61 runs").wait_for(timeout=TIMEOUT)

    page.get_by_role("button", name="Show all integrations").click()
    expect(page.get_by_text("Integration: Paging store")).to_have_count(0, timeout=TIMEOUT)
    total = int(
        page.get_by_text(re.compile(r"^[\d,]+ runs$")).inner_text().split()[0].replace(",", "")
    )
    assert total >= 61


def test_records_integration_filter_with_10000_integrations(hub: Hub, manager) -> None:
    _seed_integrations(hub)
    page = manager
    page.goto(f"{hub.url}/records")
    search = page.get_by_label("Filter by integration")
    search.fill("seeded-0")  # 10,000 integrations match: the list shows 20
    matches = page.get_by_role("list", name="Matching integrations").get_by_role("button")
    expect(matches).to_have_count(20, timeout=TIMEOUT)
    expect(matches.first).to_contain_text("Seeded store 00000")
    page.get_by_text("The first 20 by name; type more to narrow down.").wait_for()
    screenshot(page, "records-integration-filter")
    search.fill("seeded-04242")
    expect(matches).to_have_count(1, timeout=TIMEOUT)
    matches.first.click()
    page.get_by_text("Integration: Seeded store 04242").wait_for(timeout=TIMEOUT)
    page.get_by_text("No records here yet").wait_for(timeout=TIMEOUT)
    search.wait_for(state="detached")  # the chip replaces the search box until cleared

    # Records arriving in an empty list simply show up.
    integration_id = _seeded_id(hub, 4242)
    _write(hub, _products(integration_id, ["REC-1", "REC-2"]))
    page.get_by_text("2 records", exact=True).wait_for(timeout=TIMEOUT)
    page.get_by_role("cell", name="REC-2", exact=True).wait_for()

    # With rows on screen and a record open in the drawer, new ones are offered, not pushed in.
    page.get_by_role("row").filter(has_text="REC-1").get_by_role("button", name="Details").click()
    drawer = page.locator("#record-drawer")
    expect(drawer.get_by_role("heading", name="Product REC-1")).to_be_visible(timeout=TIMEOUT)
    drawer.get_by_text('"sku": "REC-1"').wait_for(timeout=TIMEOUT)
    _write(hub, _products(integration_id, ["REC-3", "REC-4", "REC-5"]))
    offer = page.get_by_role("button", name=re.compile("3 new or updated records"))
    offer.wait_for(timeout=TIMEOUT)
    assert page.get_by_role("cell", name="REC-3", exact=True).count() == 0
    page.get_by_text("2 records", exact=True).wait_for()
    drawer.get_by_text('"sku": "REC-1"').wait_for()  # the open record stays open
    screenshot(page, "records-new-offered")
    offer.click()
    page.get_by_text("5 records", exact=True).wait_for(timeout=TIMEOUT)
    page.get_by_role("cell", name="REC-5", exact=True).wait_for()
    expect(offer).to_have_count(0)

    # The side drawer shows the record's fields; Export CSV streams what the filter lists.
    page.get_by_role("row").filter(has_text="REC-5").get_by_role("button", name="Details").click()
    expect(drawer.get_by_role("heading", name="Product REC-5")).to_be_visible(timeout=TIMEOUT)
    expect(drawer.get_by_text("Seeded store 04242")).to_be_visible()
    expect(drawer.get_by_role("button", name="Copy JSON")).to_be_visible()
    screenshot(page, "records-drawer")
    drawer.get_by_role("button", name="Close").click()
    expect(drawer).to_have_count(0, timeout=TIMEOUT)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = Path(download.value.path()).read_text().splitlines()
    assert rows[0].startswith("External id,Integration,Title,SKU")
    assert sorted(row.split(",")[3] for row in rows[1:]) == [f"REC-{n}" for n in range(1, 6)]
