"""A manager sets up a Shopify integration and a connect link; the merchant approves through
the sandbox consent page; the manager watches it connect, sync, and the products appear."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Hub, screenshot, sign_in

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
SHOP = "demo-outdoor.myshopify.com"


def test_manager_links_merchant_connects_and_records_sync(hub: Hub, browser) -> None:
    hub.cli(
        "users",
        "create",
        "--email",
        "manager@example.com",
        "--role",
        "manager",
        stdin="manager-password-1\n",
    )
    manager = browser.new_context()
    page = manager.new_page()
    sign_in(page, hub, "manager@example.com", "manager-password-1")
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill("Outdoor store")
    page.get_by_label("Shop domain").fill("shop.myshopify.com.evil.com")
    page.get_by_text("is not a Shopify shop domain").wait_for(timeout=TIMEOUT)
    page.get_by_label("Shop domain").fill(SHOP)
    # What the manager sees before going on: the corrected domain taken. The field sends its
    # value after a pause in typing (or on leaving it); once, in a whole-suite run on a
    # loaded machine, step 3 never came after Next (cause not proven), and this rules out
    # Next reaching the hub before the corrected value.
    page.locator("#shop-domain-hint").get_by_text(SHOP).wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="Next").click()
    screenshot(page, "wizard-streams")
    page.get_by_role("button", name="Create connect link").click()
    link = page.locator("#connect-link").inner_text(timeout=TIMEOUT)
    assert re.match(rf"{re.escape(hub.url)}/connect/[\w-]+$", link), link
    screenshot(page, "wizard-link")

    merchant = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    phone = merchant.new_page()
    phone.goto(link)
    phone.get_by_text("See your products and their variants").wait_for(timeout=TIMEOUT)
    phone.get_by_text(SHOP).wait_for()
    screenshot(phone, "merchant-connect")
    phone.get_by_role("button", name="Approve").click()
    # The sandbox's Shopify consent, once the redirects have landed there: a screenshot taken
    # while the browser is still navigating can hang (seen once in a full run).
    install = phone.get_by_role("button", name="Install app")
    install.wait_for(timeout=TIMEOUT)
    screenshot(phone, "sandbox-consent")
    # A cancel first: Shopify sends the app nothing; the page leads back to the link, which
    # says the connection was cancelled and offers Approve again.
    phone.get_by_role("button", name="Cancel").click()
    phone.get_by_role("heading", name="Installation cancelled").wait_for(timeout=TIMEOUT)
    phone.get_by_role("link", name="Back to the app").click()
    phone.locator("#connection-cancelled").wait_for(timeout=TIMEOUT)
    screenshot(phone, "merchant-connect-cancelled")
    phone.get_by_role("button", name="Approve").click()
    install.wait_for(timeout=TIMEOUT)
    install.click()
    phone.get_by_role("heading", name="Connected").wait_for(timeout=TIMEOUT)
    screenshot(phone, "merchant-connected")

    reused = merchant.new_page()
    reused.goto(link)
    reused.get_by_text("was used already").wait_for(timeout=TIMEOUT)
    merchant.close()

    page.get_by_role("link", name="Open the integration").click()
    page.get_by_text("Sync all now").wait_for(timeout=TIMEOUT)
    page.get_by_role("tab", name="Runs").click()
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)
    screenshot(page, "integration-runs")
    page.get_by_role("tab", name="Status").click()
    page.get_by_text("Demo Outdoor").wait_for(
        timeout=TIMEOUT
    )  # the shop's name, read after connect
    assert "shpat_" not in page.content()

    page.goto(f"{hub.url}/records")
    page.get_by_text("gid://shopify/Product/").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "records")

    # The audit log in words, naming the person.
    page.goto(f"{hub.url}/settings")
    page.get_by_text("manager@example.com created the integration Outdoor store").wait_for(
        timeout=TIMEOUT
    )
    page.get_by_text("manager@example.com created a connect link for Outdoor store").wait_for()
    manager.close()


def test_viewer_cannot_trigger_a_sync(hub: Hub, browser) -> None:
    hub.cli(
        "users",
        "create",
        "--email",
        "viewer2@example.com",
        "--role",
        "viewer",
        stdin="viewer-password-2\n",
    )
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, "viewer2@example.com", "viewer-password-2")
    page.goto(f"{hub.url}/integrations")
    page.get_by_role("link", name="Outdoor store").click()
    page.get_by_role("tab", name="Streams").wait_for(timeout=TIMEOUT)
    assert page.get_by_role("button", name="Sync all now").count() == 0
    assert page.get_by_role("button", name="Sync now").count() == 0
    context.close()
    # The handler itself refuses too (not only the hidden button): see test_ui_roles.


def test_admin_sees_runs_and_overview(hub: Hub, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_text("Connected").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "overview")
    page.goto(f"{hub.url}/runs")
    page.get_by_text("Outdoor store").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "runs")
    context.close()
