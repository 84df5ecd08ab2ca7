"""Day-to-day operations on integrations in a browser: connect now, logs and webhooks, a
revoked token that notifies and is reconnected in place, Amazon through the wizard, what each
role sees, and the Integrations page with 10,000 integrations (live). The Runs page's paging and
the Records page's integration filter: tests/browser/test_operations_runs_records.py.

The tests share one hub. The first four tell one story in file order (the role test uses what
the first two connected); the Integrations page tests seed what they need and run alone too,
though the first one's docs screenshot shows the integrations the story connected.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from dashboard.models import Integration, SyncRun
from tests.browser.conftest import Hub, docs_screenshot, screenshot, sign_in
from tests.browser.operations_helpers import (
    TIMEOUT,
    VIEWER,
    _products,
    _seed_integrations,
    _seeded_id,
    _write,
    choose,
    manager,
    open_tab,
    sandbox,
    users,
)

__all__ = ["manager", "users"]  # the signed-in manager's page and its module's users

pytestmark = pytest.mark.browser
SHOP = "ops-store.myshopify.com"
EU_SELLER = "A1OPSTESTSELLEREU"


def test_manager_connects_now_and_reads_logs_and_webhooks(hub: Hub, manager) -> None:
    page = manager
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill("Ops store")
    page.get_by_label("Shop domain").fill(SHOP)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Connect now").click()
    page.get_by_role("button", name="Install app").click()  # the sandbox's consent page
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=TIMEOUT)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    open_tab(page, "Runs")
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)

    open_tab(page, "Logs")
    page.get_by_text("run succeeded").first.wait_for(timeout=TIMEOUT)
    choose(page, "Level", "Errors only")
    page.get_by_text("No log lines match").wait_for(timeout=TIMEOUT)
    choose(page, "Level", "All levels")
    page.get_by_label("Search the logs").fill("SUCCEEDED")
    # The search applies after its debounce: the run's other lines (its start, its pages)
    # go away; the download must not be asked for before that.
    page.get_by_text("run started").first.wait_for(state="hidden", timeout=TIMEOUT)
    page.get_by_text(re.compile(r"^page \d+: ")).first.wait_for(state="hidden", timeout=TIMEOUT)
    page.get_by_text("run succeeded").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "integration-logs")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    assert download.value.suggested_filename.endswith("-logs.json")
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())  # noqa: SIM115
    assert exported and all("succeeded" in event["message"] for event in exported)
    assert {"at", "level", "stream", "message"} <= set(exported[0])
    with page.expect_download() as download:
        page.get_by_role("button", name="Download text").click()
    text = open(download.value.path(), encoding="utf-8").read()  # noqa: SIM115
    assert "INFO" in text and "run succeeded" in text

    open_tab(page, "Webhooks")
    page.get_by_text("PRODUCTS_UPDATE").wait_for(timeout=TIMEOUT)
    page.get_by_text("No webhook deliveries received yet").wait_for(timeout=TIMEOUT)
    sandbox(hub, "POST", f"/shopify/shops/{SHOP}/mutate", {"updates": 2})
    # The delivery shows up without a reload.
    page.get_by_text("products/update").first.wait_for(timeout=TIMEOUT)
    page.get_by_text("processed").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "integration-webhooks")


def test_revoked_access_notifies_and_reconnect_restores_it(hub: Hub, browser, manager) -> None:
    page = manager
    overview = page.context.new_page()
    overview.goto(f"{hub.url}/")
    overview.get_by_text("Records synced per hour").wait_for(timeout=TIMEOUT)
    assert overview.locator("#records-per-hour .recharts-bar-rectangle").count() > 0
    overview.get_by_text("No integration waits for its merchant.").wait_for(timeout=TIMEOUT)
    overview.get_by_text("Nothing needs attention").wait_for(timeout=TIMEOUT)
    screenshot(overview, "overview-live")

    page.goto(f"{hub.url}/integrations")
    page.get_by_role("link", name="Ops store").click()
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    assert page.get_by_role("button", name=re.compile(r"open incident")).count() == 0
    sandbox(hub, "PUT", f"/faults/shopify/{SHOP}", {"revoke_tokens": True})
    # A sync the webhooks started may meet the revoked token first: then there is no button.
    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_role("button", name="Sync all now").click(timeout=5_000)

    # The page, the bell and the open overview all change without a reload.
    page.get_by_role("button", name="Reconnect now").wait_for(timeout=60_000)
    # One incident, however many streams found out, in words, with what to do.
    bell = page.get_by_role("button", name="Notifications, 1 open incident")
    bell.wait_for(timeout=TIMEOUT)
    # The admin switches to the Overview's tab (a hidden tab's page may render late: Chromium
    # defers a background page's frames) and finds it changed without a reload.
    overview.bring_to_front()
    overview.get_by_role("link", name="Ops store", exact=True).wait_for(timeout=TIMEOUT)
    overview.locator("#attention").get_by_role(
        "link", name=re.compile(r"^Ops store: Shopify refused the hub's access")
    ).wait_for(timeout=TIMEOUT)
    screenshot(overview, "overview-needs-reauth")

    page.bring_to_front()
    bell.click()
    notice = page.get_by_role("link", name=re.compile(r"^Ops store: Shopify refused"))
    notice.wait_for(timeout=TIMEOUT)
    # The bell's own item says what to do (the integration page says it too, above its tabs).
    page.locator(".incident-advice", has_text="send the merchant a reconnect link").wait_for(
        timeout=TIMEOUT
    )
    page.wait_for_timeout(2_500)  # live updates arrive meanwhile: the list stays open
    assert notice.is_visible()
    screenshot(page, "notifications", full_page=False)
    notice.click()
    open_tab(page, "Status")
    page.get_by_text("Access was revoked or expired").wait_for(timeout=TIMEOUT)

    # The merchant's way back: a reconnect link, worded as such.
    page.get_by_role("button", name="New reconnect link").first.click()
    link = page.locator("#connect-link").inner_text(timeout=TIMEOUT)
    merchant = browser.new_context(viewport={"width": 390, "height": 844})
    phone = merchant.new_page()
    phone.goto(link)
    phone.get_by_role(
        "heading", name=re.compile("asks to reconnect to your Shopify store")
    ).wait_for(timeout=TIMEOUT)
    phone.get_by_text("The access you gave earlier no longer works").wait_for()
    screenshot(phone, "merchant-reconnect")
    merchant.close()
    open_tab(page, "Status")

    sandbox(hub, "PUT", f"/faults/shopify/{SHOP}", {})
    page.get_by_role("button", name="Reconnect now").first.click()
    page.get_by_role("button", name="Install app").click()
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=TIMEOUT)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    overview.get_by_text("No integration waits for its merchant.").wait_for(timeout=TIMEOUT)

    # Access returned: the incident resolves by itself and leaves the bell and the Overview.
    page.get_by_role("button", name="Notifications", exact=True).wait_for(timeout=TIMEOUT)
    overview.get_by_text("Nothing needs attention").wait_for(timeout=TIMEOUT)


def test_amazon_through_the_wizard_with_region_and_marketplaces(hub: Hub, manager) -> None:
    sandbox(hub, "POST", "/amazon/sellers", {
        "selling_partner_id": EU_SELLER, "region": "eu", "store_name": "Ops EU Store",
        "marketplaces": ["A1PA6795UKMFR9", "A13V1IB3VIYZZH"],
        "orders": 30, "listings": 20, "fba_items": 5,
    })  # fmt: skip
    page = manager
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Amazon Seller Central").click()
    page.get_by_label("Name").fill("Ops EU seller")
    choose(page, "Region", "Europe (EU)")
    page.get_by_role("checkbox", name="Amazon.co.uk (GB)").click()  # the region's default
    page.get_by_role("checkbox", name="Amazon.de (DE)").click()
    page.get_by_role("checkbox", name="Amazon.fr (FR)").click()
    screenshot(page, "wizard-amazon")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Connect now").click()
    page.get_by_role("button", name="Confirm").click()  # the sandbox's Seller Central consent
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=TIMEOUT)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    open_tab(page, "Status")
    page.get_by_text(EU_SELLER).wait_for(timeout=TIMEOUT)
    page.get_by_text("Amazon.de (DE), Amazon.fr (FR)").wait_for(timeout=TIMEOUT)
    open_tab(page, "Runs")
    page.get_by_text("succeeded").first.wait_for(timeout=90_000)
    screenshot(page, "integration-amazon")


def test_each_role_sees_only_the_actions_it_may_use(hub: Hub, browser, manager) -> None:
    # A failed run exists (the revoked token): managers can retry it, viewers cannot.
    manager.goto(f"{hub.url}/runs")
    manager.get_by_role("button", name="Retry").first.wait_for(timeout=TIMEOUT)
    manager.goto(f"{hub.url}/integrations")
    manager.get_by_role("link", name="Ops store").click()
    open_tab(manager, "Settings")
    manager.get_by_role("button", name="Save name").wait_for(timeout=TIMEOUT)
    assert manager.get_by_role("button", name="Disconnect").count() == 1
    assert manager.get_by_role("button", name="Delete").count() == 0  # admins only

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, *VIEWER)
    page.goto(f"{hub.url}/runs")
    page.get_by_role("button", name="Log").first.wait_for(timeout=TIMEOUT)
    page.get_by_text("failed").first.wait_for(timeout=TIMEOUT)
    for action in ("Retry", "Cancel"):
        assert page.get_by_role("button", name=action).count() == 0
    # Reading a run stays open to viewers: its counters, timeline and log.
    failed = page.get_by_role("row").filter(has_text="failed").first
    failed.get_by_role("button", name="Log").click()
    page.get_by_text("Last heartbeat").wait_for(timeout=TIMEOUT)
    assert page.get_by_text("Inserted", exact=True).count() == 1
    log = page.get_by_label("Run log")
    log.get_by_text("error").first.wait_for(timeout=TIMEOUT)  # the failure, in the log tail
    screenshot(page, "run-detail")

    page.goto(f"{hub.url}/integrations")
    page.get_by_role("link", name="Ops store").wait_for(timeout=TIMEOUT)
    assert page.get_by_text("Select this page").count() == 0
    assert page.get_by_role("button", name="Pause selected").count() == 0
    assert page.get_by_role("checkbox").count() == 0
    page.get_by_role("link", name="Ops store").click()
    page.get_by_role("tab", name="Streams").wait_for(timeout=TIMEOUT)
    for tab in ("Streams", "Connect links", "Settings"):
        open_tab(page, tab)
        for action in (
            "Sync all now", "Sync now", "Pause", "Full resync", "Reconnect now",
            "New connect link", "New reconnect link", "Pause integration", "Save name",
            "Disconnect", "Delete",
        ):  # fmt: skip
            assert page.get_by_role("button", name=action, exact=True).count() == 0, action
    page.get_by_text("Managers and admins can edit").wait_for(timeout=TIMEOUT)
    open_tab(page, "Logs")  # reading stays open to viewers
    page.get_by_role("button", name="Download JSON").wait_for(timeout=TIMEOUT)

    page.get_by_role("button", name=re.compile("^Notifications")).click()
    page.get_by_role("heading", name="Needs attention").wait_for(timeout=TIMEOUT)
    screenshot(page, "viewer-integration")
    context.close()


def test_integrations_page_with_10000_integrations(hub: Hub, manager) -> None:
    page = manager
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{hub.url}/integrations")
    page.get_by_text(re.compile(r"^[\d,]+ integrations?$|^No integrations yet$")).wait_for(
        timeout=TIMEOUT
    )
    docs_screenshot(page, "integrations")  # with the integrations earlier tests connected

    # The open, searched page counts the 10,000 as they arrive: no reload.
    page.get_by_label("Search integrations").fill("seeded-")
    _seed_integrations(hub)
    page.get_by_text("10,000 integrations").wait_for(timeout=TIMEOUT)
    page.get_by_text("Page 1 of 400").wait_for()
    page.get_by_role("button", name="Next").click()
    page.get_by_text("Page 2 of 400").wait_for(timeout=TIMEOUT)

    page.get_by_label("Search integrations").fill("seeded-0424")
    page.get_by_text("10 integrations").wait_for(timeout=TIMEOUT)  # seeded-04240 .. 04249
    page.get_by_text("Page 1 of 1").wait_for()
    first_row = page.get_by_role("link", name=re.compile("Seeded store")).first
    choose(page, "Sort", "Name")
    expect(first_row).to_have_text("Seeded store 04240", timeout=TIMEOUT)
    page.get_by_role("button", name="Reverse the order").click()
    expect(first_row).to_have_text("Seeded store 04249", timeout=TIMEOUT)

    # Bulk: pause the five connected ones on screen; pending ones have nothing to pause.
    page.get_by_role("checkbox", name="Select this page").click()
    page.get_by_text("10 selected").wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="Pause selected").click()
    page.get_by_text("Paused 5 of 10; 5 had nothing to pause.").wait_for(timeout=TIMEOUT)
    choose(page, "Status", "Paused")
    page.get_by_text("5 integrations").wait_for(timeout=TIMEOUT)
    page.get_by_role("checkbox", name="Select this page").click()
    page.get_by_role("button", name="Resume selected").click()
    page.get_by_text("Resumed 5 of 5.").wait_for(timeout=TIMEOUT)
    page.get_by_text("No integration matches").wait_for(timeout=TIMEOUT)
    screenshot(page, "integrations-bulk")


def test_integrations_page_shows_syncs_as_they_happen(hub: Hub, manager) -> None:
    _seed_integrations(hub)
    integration_id = _seeded_id(hub, 4241)  # connected, never synced, no records
    page = manager
    page.goto(f"{hub.url}/integrations")
    page.get_by_label("Search integrations").fill("seeded-04241")
    page.get_by_text("1 integration", exact=True).wait_for(timeout=TIMEOUT)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Seeded store 04241"))
    expect(row).to_contain_text("connected", timeout=TIMEOUT)
    expect(row).to_contain_text("never")
    expect(row.get_by_role("cell").last).to_have_text("0")

    # A sync starts and stores its first batch: status and record count follow, no reload.
    run_id = uuid.uuid4()
    _write(
        hub,
        sa.update(Integration).where(Integration.id == integration_id).values(status="syncing"),
        sa.insert(SyncRun).values(
            id=run_id,
            integration_id=integration_id,
            stream="products",
            status="running",
            records_read=3,
            records_inserted=3,
            created_at=datetime.now(UTC),
        ),
        _products(integration_id, ["LIVE-1", "LIVE-2", "LIVE-3"]),
    )
    expect(row).to_contain_text("syncing", timeout=TIMEOUT)
    expect(row).to_contain_text("first sync running")  # not "never" beside its records
    expect(row.get_by_role("cell").last).to_have_text("3", timeout=TIMEOUT)
    _write(
        hub,
        _products(integration_id, ["LIVE-4", "LIVE-5"]),
        sa.update(SyncRun).where(SyncRun.id == run_id).values(records_read=5, records_inserted=5),
    )
    expect(row.get_by_role("cell").last).to_have_text("5", timeout=TIMEOUT)
    screenshot(page, "integrations-live-syncing")

    # It ends: connected again, synced just now.
    now = datetime.now(UTC)
    _write(
        hub,
        sa.update(SyncRun).where(SyncRun.id == run_id).values(status="succeeded", finished_at=now),
        sa.update(Integration)
        .where(Integration.id == integration_id)
        .values(status="connected", last_sync_at=now),
    )
    expect(row).to_contain_text("connected", timeout=TIMEOUT)
    expect(row).not_to_contain_text("never", timeout=TIMEOUT)
    expect(row).not_to_contain_text("first sync running")
    expect(row.get_by_role("cell").last).to_have_text("5")
