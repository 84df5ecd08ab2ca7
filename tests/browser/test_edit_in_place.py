"""Edit in place (issue 15): on a connected integration's Settings tab a manager changes a
stream's interval and the running scheduler shows the new next run on the Streams tab without
a restart; a cron expression shows its next three runs; a 500-character name is refused with
the message once, next to the field."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Hub,
    connect_shopify_now,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
SHOP = "edit-in-place.myshopify.com"
TOO_LONG = "Keep the name to 120 characters; this one has 500."


def test_edit_in_place_reschedules_and_refuses_a_500_character_name(hub: Hub, browser) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    connect_shopify_now(page, hub, "Edit store", SHOP)
    integration_url = page.url

    # The stream starts on the wizard's 15 minutes: its next run is minutes away.
    products = page.locator("#stream-products")
    products.get_by_text("every 15 min").wait_for(timeout=TIMEOUT)

    page.get_by_role("tab", name="Settings").click()
    name = page.get_by_label("Integration name")
    name.wait_for(timeout=TIMEOUT)
    # The field appears holding the stored name, so what is typed next replaces it whole.
    assert name.input_value() == "Edit store"
    name.fill("x" * 500)
    error = page.locator("#integration-name-error")
    error.wait_for(timeout=TIMEOUT)
    assert error.inner_text() == TOO_LONG
    page.get_by_role("button", name="Save name").click()
    page.wait_for_timeout(1000)  # the server answers: the same message, still once
    assert page.get_by_text(TOO_LONG).count() == 1
    assert page.get_by_role("heading", name="Edit store").count() == 1
    # the field names its error for screen readers
    assert name.get_attribute("aria-describedby") == "integration-name-error"
    screenshot(page, "edit-in-place-name-refused")
    name.fill("Edit store EU")
    page.get_by_role("button", name="Save name").click()
    page.get_by_role("heading", name="Edit store EU").wait_for(timeout=TIMEOUT)

    interval = page.get_by_label("Interval of Products and variants in minutes")
    interval.fill("360")
    page.get_by_role("button", name="Save the schedule of Products and variants").click()
    page.get_by_text("Products and variants: schedule saved.").wait_for(timeout=TIMEOUT)

    # A cron expression on orders: its next three runs, in the viewer's time zone.
    page.get_by_role("combobox", name="Schedule of Orders and line items").click()
    page.get_by_role("option", name="Cron expression").click()
    cron = page.get_by_label("Cron expression of Orders and line items")
    cron.fill("* * * * *")
    page.locator("#schedule-error-orders").get_by_text(
        "runs more often than every 5 minutes"
    ).wait_for(timeout=TIMEOUT)
    cron.fill("0 */6 * * *")
    next_runs = page.locator("#schedule-orders .cron-next-runs .rt-Badge")
    next_runs.nth(2).wait_for(timeout=TIMEOUT)
    assert next_runs.count() == 3
    assert page.locator("#schedule-error-orders").count() == 0
    page.get_by_role("button", name="Save the schedule of Orders and line items").click()
    page.get_by_text("Orders and line items: schedule saved.").wait_for(timeout=TIMEOUT)
    screenshot(page, "edit-in-place-settings")

    # The running scheduler picked the change up: the Streams tab shows the new schedule and
    # a next run six hours out (it was minutes away), without a restart.
    page.get_by_role("tab", name="Streams").click()
    products.get_by_text("every 6 hours").wait_for(timeout=TIMEOUT)
    products.locator(".next-run").filter(has_text=re.compile(r"in (5|6) hours")).wait_for(
        timeout=TIMEOUT
    )
    orders = page.locator("#stream-orders")
    orders.get_by_text("cron 0 */6 * * * (UTC)").wait_for(timeout=TIMEOUT)
    # at most six hours out, in moment.js's words ("in an hour" between 45 and 89 minutes)
    orders.locator(".next-run").filter(
        has_text=re.compile(r"^in (a few seconds|a minute|an hour|\d+ (minutes|hours))$")
    ).wait_for(timeout=TIMEOUT)
    screenshot(page, "edit-in-place-streams")

    # After a reload the page reads the same from the database.
    page.goto(integration_url)
    page.locator("#stream-products").get_by_text("every 6 hours").wait_for(timeout=TIMEOUT)
    context.close()
