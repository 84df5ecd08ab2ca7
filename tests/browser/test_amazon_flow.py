"""A manager sets up an Amazon integration (region, marketplaces) and a connect link; the
seller creates a new seller account on the sandbox's Seller Central consent page on a phone
and approves as it; the integration connects with that seller's id and its orders sync."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Hub, screenshot, sign_in

pytestmark = pytest.mark.browser
TIMEOUT = 30_000


def test_manager_links_seller_connects_and_orders_sync(hub: Hub, browser) -> None:
    hub.cli(
        "users", "create", "--email", "amazon-manager@example.com", "--role", "manager",
        stdin="manager-password-3\n",
    )  # fmt: skip
    manager = browser.new_context()
    page = manager.new_page()
    sign_in(page, hub, "amazon-manager@example.com", "manager-password-3")
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Amazon Seller Central").click()
    page.get_by_label("Name").fill("Amazon US seller")
    page.get_by_text("Amazon.com (US)").wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create connect link").click()
    link = page.locator("#connect-link").inner_text(timeout=TIMEOUT)
    assert re.match(rf"{re.escape(hub.url)}/connect/[\w-]+$", link), link

    seller = browser.new_context(viewport={"width": 390, "height": 844})
    phone = seller.new_page()
    phone.goto(link)
    phone.get_by_text("See your orders and the items in them").wait_for(timeout=TIMEOUT)
    phone.get_by_role("button", name="Approve").click()
    phone.get_by_role("heading", name=re.compile("Authorize")).wait_for(timeout=TIMEOUT)
    screenshot(phone, "amazon-consent")
    # The sandbox's Seller Central: the region's sellers to sign in as, or a new one.
    expect(phone.get_by_role("radio").first).to_be_checked()
    phone.get_by_label("Store name").fill("Trail Outfitters")
    phone.get_by_role("button", name="Create seller").click()
    phone.get_by_text("Created Trail Outfitters").wait_for(timeout=TIMEOUT)
    created = phone.get_by_role("radio", name=re.compile("Trail Outfitters"))
    expect(created).to_be_checked()
    new_seller = re.search(r"A[A-Z0-9]{13}", created.get_attribute("value") or "")
    assert new_seller, created.get_attribute("value")
    screenshot(phone, "amazon-consent-new-seller")
    phone.get_by_role("button", name="Confirm").click()
    phone.get_by_role("heading", name="Connected").wait_for(timeout=TIMEOUT)
    assert "Atz" not in phone.content()
    seller.close()

    page.get_by_role("link", name="Open the integration").click()
    page.get_by_role("tab", name="Runs").click()
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)
    page.get_by_role("tab", name="Status").click()
    page.get_by_text(new_seller.group(0)).first.wait_for(timeout=TIMEOUT)  # the one chosen
    screenshot(page, "amazon-integration")
    assert "Atzr|" not in page.content()
    manager.close()
