"""The rest of issue 13's failure cases, seen as a person sees them: a 429 storm shows as
waiting for the rate limit and then fails as documented, an uninstall and a merchant's Decline
each raise an incident in words, a second integration for a connected shop is refused with a
page that links to the first, and the demo lives (a webhook-driven change within a minute).

The first four share one hub on a fast sandbox clock; the demo starts its own (demo data on).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Hub,
    connect_shopify_now,
    require_chromium,
    running_hub,
    screenshot,
    sign_in,
)
from tests.browser.operations_helpers import MANAGER, TIMEOUT, open_tab, sandbox, users  # noqa: F401

pytestmark = pytest.mark.browser
THROTTLED_SELLER = "A1THROTTLESELLRNA"
HHMM = r"\d\d:\d\d"
CLOCK = r"\d\d:\d\d(?::\d\d)?"  # a run's next call shows to the second (formats.exact_time)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The sandbox's clock 50x: its rate-limit windows (and so the throttled waits) are short.
    Webhook subscriptions are checked every minute instead of every hour."""
    require_chromium()
    env = {"HUB_SANDBOX_TIME_SCALE": "50", "HUB_SHOPIFY_WEBHOOK_CHECK_MINUTES": "1"}
    with running_hub(tmp_path_factory.mktemp("hub"), extra_env=env) as hub:
        yield hub


@pytest.fixture
def page(hub: Hub, browser, users):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, hub, *MANAGER)
    yield page
    context.close()


def open_incident(page, title: re.Pattern[str]) -> str:
    """Open the bell and return the words of the incident whose link matches ``title``."""
    bell = page.get_by_role("button", name=re.compile(r"^Notifications, \d+ open incidents?$"))
    bell.wait_for(timeout=120_000)
    popover = page.get_by_role("dialog", name="Open incidents")
    link = popover.get_by_role("link", name=title)
    for _ in range(20):  # the list is read when the bell opens: reopen until it is there
        if not popover.is_visible():
            bell.click()
        try:
            link.wait_for(timeout=6_000)
            break
        except PlaywrightTimeout:  # close and look again
            page.keyboard.press("Escape")
    link.wait_for(timeout=TIMEOUT)
    incident = popover.locator(".incident").filter(has=page.get_by_role("link", name=title))
    return incident.inner_text()


def test_a_throttle_storm_waits_for_the_rate_limit_then_fails_as_documented(hub: Hub, page) -> None:
    sandbox(hub, "POST", "/amazon/sellers", {
        "selling_partner_id": THROTTLED_SELLER, "region": "na", "store_name": "Throttled Store",
        "orders": 20, "listings": 10, "fba_items": 5,
    })  # fmt: skip
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Amazon Seller Central").click()
    page.get_by_label("Name").fill("Throttled seller")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Connect now").click()
    page.get_by_label(re.compile("Throttled Store")).check()  # the sandbox's consent page
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=TIMEOUT)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    open_tab(page, "Runs")
    page.get_by_text("succeeded").first.wait_for(timeout=90_000)  # the client learns the rates

    sandbox(hub, "PUT", f"/faults/amazon/{THROTTLED_SELLER}", {"throttle_rate": 1.0})
    page.get_by_role("button", name="Sync all now").click()
    page.goto(f"{hub.url}/runs")
    waiting = page.locator(".run-activity").filter(
        has_text=re.compile(rf"^Waiting for rate limit \(next call {CLOCK}\)$")
    )
    waiting.first.wait_for(timeout=60_000)
    # The run that waits: its stream (the rows of earlier, successful runs never gave up).
    waiting_row = page.get_by_role("row").filter(has=waiting.first)
    stream = waiting_row.get_by_role("cell").nth(2).inner_text().strip()
    screenshot(page, "failure-throttle-waiting")

    # After the documented attempts (docs/sync-engine.md: the 4th) that run fails, in words.
    page.get_by_role("row").filter(has_text=stream).filter(
        has_text=re.compile(r"gave up after 4 attempts: SP-API \w+ answered 429 \(throttled\)")
    ).first.wait_for(timeout=150_000)
    screenshot(page, "failure-throttle-failed")
    words = open_incident(page, re.compile(r"^Throttled seller: Amazon kept throttling the hub"))
    assert "429" in words
    screenshot(page, "failure-throttle-incident", full_page=False)
    sandbox(hub, "PUT", f"/faults/amazon/{THROTTLED_SELLER}", {})


def test_an_uninstall_is_an_incident_with_what_to_do(hub: Hub, page) -> None:
    shop = "uninstall-store.myshopify.com"
    connect_shopify_now(page, hub, "Uninstall store", shop)
    open_tab(page, "Runs")
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)

    sandbox(hub, "POST", f"/shopify/shops/{shop}/revoke", {})  # the merchant removes the app
    words = open_incident(
        page, re.compile(rf"^Uninstall store: The merchant removed the app from {shop}")
    )
    assert "send a reconnect link" in words
    screenshot(page, "failure-uninstall-bell", full_page=False)
    page.keyboard.press("Escape")
    page.get_by_text("uninstalled", exact=True).first.wait_for(timeout=TIMEOUT)  # the badge


def test_a_removed_webhook_subscription_comes_back_with_an_incident(hub: Hub, page) -> None:
    shop = "hooks-store.myshopify.com"
    connect_shopify_now(page, hub, "Hooks store", shop)
    # Someone deletes two of the app's subscriptions in the shop.
    removed = sandbox(hub, "POST", f"/shopify/shops/{shop}/webhook_subscriptions/remove",
                      {"topics": ["ORDERS_CREATE", "PRODUCTS_UPDATE"]})  # fmt: skip
    assert sorted(removed["removed"]) == ["ORDERS_CREATE", "PRODUCTS_UPDATE"]
    words = open_incident(
        page,
        re.compile(
            rf"^Hooks store: 2 webhook subscriptions were removed from {shop}: "
            rf"orders\/create, products\/update \(found {HHMM}\)$"  # \/: Playwright's syntax
        ),
    )
    assert re.search(rf"the hub subscribed again at {HHMM}", words)
    screenshot(page, "failure-webhook-subscription-removed", full_page=False)
    listed = httpx.get(
        f"{hub.url}/sandbox/_sandbox/shopify/shops/{shop}/webhook_subscriptions",
        headers=hub.sandbox_headers(), timeout=10,
    ).json()  # fmt: skip
    assert {"ORDERS_CREATE", "PRODUCTS_UPDATE"} <= {s["topic"] for s in listed}  # back
    # The next check finds them all: the incident leaves the integration's page.
    page.keyboard.press("Escape")
    callout = page.get_by_text(re.compile("webhook subscriptions were removed"))
    callout.first.wait_for(state="detached", timeout=150_000)


def test_a_merchants_decline_shows_declined_and_an_incident(hub: Hub, browser, page) -> None:
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill("Declined store")
    page.get_by_label("Shop domain").fill("declined-store.myshopify.com")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create connect link").click()
    link = page.locator("#connect-link").inner_text(timeout=TIMEOUT)

    merchant = browser.new_context(viewport={"width": 390, "height": 844})
    phone = merchant.new_page()
    phone.goto(link)
    phone.get_by_role("button", name="Decline").click()
    phone.get_by_text("will not get access").wait_for(timeout=TIMEOUT)
    merchant.close()

    words = open_incident(
        page, re.compile(r"^Declined store: The merchant declined the connection request")
    )
    assert "send a new connect link" in words
    screenshot(page, "failure-decline-bell", full_page=False)
    page.keyboard.press("Escape")
    page.goto(f"{hub.url}/integrations")
    page.get_by_label("Search integrations").fill("Declined")
    page.get_by_text("1 integration", exact=True).wait_for(timeout=TIMEOUT)  # searched
    row = page.get_by_role("row", name=re.compile("Declined store"))
    row.locator(".health-badge").get_by_text("declined", exact=True).wait_for(timeout=TIMEOUT)
    screenshot(page, "failure-decline-integrations")


def test_a_second_integration_for_a_connected_shop_is_refused(hub: Hub, browser, page) -> None:
    shop = "duplicate-store.myshopify.com"
    # A connect link for the second integration, made before the first one connects.
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill("Second duplicate")
    page.get_by_label("Shop domain").fill(shop)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create connect link").click()
    link = page.locator("#connect-link").inner_text(timeout=TIMEOUT)
    connect_shopify_now(page, hub, "First duplicate", shop)
    first_url = page.url

    merchant = browser.new_context()
    phone = merchant.new_page()
    phone.goto(link)
    phone.get_by_role("button", name="Approve").click()
    phone.get_by_role("button", name="Install app").click()
    phone.get_by_role("heading", name="Already connected").wait_for(timeout=TIMEOUT)
    phone.get_by_text("First duplicate").first.wait_for()
    screenshot(phone, "failure-duplicate-refused")
    existing = phone.get_by_role("link", name=re.compile("Open .First duplicate."))
    assert existing.get_attribute("href") == first_url
    merchant.close()


def test_the_demo_lives_a_webhook_arrives_within_a_minute(
    tmp_path_factory: pytest.TempPathFactory, browser
) -> None:
    base: Path = tmp_path_factory.mktemp("demo-hub")
    env = {"HUB_SANDBOX_DEMO": "true", "HUB_SANDBOX_TIME_SCALE": "10"}
    with running_hub(base, extra_env=env) as demo:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        sign_in(page, demo, ADMIN_EMAIL, ADMIN_PASSWORD)
        page.goto(f"{demo.url}/integrations")
        page.get_by_role("link", name="Demo Outdoor (Shopify)").click(timeout=60_000)
        open_tab(page, "Webhooks")
        # The sandbox's change loop places an order every few seconds; its webhook shows up
        # without a reload.
        delivered = page.get_by_text("orders/create", exact=True).first
        try:
            delivered.wait_for(timeout=60_000)
        finally:
            screenshot(page, "demo-webhook-arrived")
        context.close()
