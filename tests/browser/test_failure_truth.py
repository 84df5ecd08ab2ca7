"""A 5xx storm on every stream of a Shopify shop, seen as a person sees it (issue 13): the
bell shows ONE incident in plain words with what to do, the Overview's attention panel lists
it, the cards add up, and the Integrations list says the integration is failing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser.conftest import (
    Hub,
    connect_shopify_now,
    require_chromium,
    running_hub,
    screenshot,
    sign_in,
)
from tests.browser.operations_helpers import MANAGER, TIMEOUT, open_tab, sandbox, users  # noqa: F401

pytestmark = pytest.mark.browser
SHOP = "truth-store.myshopify.com"
OUTAGE = re.compile(r"^Truth store: Shopify answered 50\d for 4 streams since \d\d:\d\d$")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """All four streams at once: each fails only after its documented attempts (about two
    minutes), and by default two streams of one integration run at a time."""
    require_chromium()
    with running_hub(tmp_path_factory.mktemp("hub"), {"HUB_SYNC_PER_INTEGRATION": "4"}) as hub:
        yield hub


def test_a_5xx_storm_on_four_streams_is_one_incident_in_words(hub: Hub, browser, users) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, hub, *MANAGER)
    connect_shopify_now(page, hub, "Truth store", SHOP)
    open_tab(page, "Runs")
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)

    # The store's API goes down for every call, then all four streams sync.
    sandbox(hub, "PUT", f"/faults/shopify/{SHOP}", {"error_rate": 1.0})
    page.get_by_role("button", name="Sync all now").click()

    # Four failed streams (each after its documented attempts): one incident, not four. It
    # opens with the first failed stream and names more as they fail.
    bell = page.get_by_role("button", name="Notifications, 1 open incident")
    bell.wait_for(timeout=240_000)
    bell.click()
    popover = page.get_by_role("dialog", name="Open incidents")
    popover.get_by_role("link", name=OUTAGE).wait_for(timeout=240_000)
    assert popover.locator(".incident").count() == 1
    advice = popover.locator(".incident-advice").inner_text()
    assert "the store's API is down" in advice and "the hub retries every" in advice
    assert "graphql.json" not in popover.inner_text()  # no raw request line
    screenshot(page, "failure-truth-bell", full_page=False)
    page.keyboard.press("Escape")

    # The Overview's attention panel lists the same incident, and the cards add up.
    page.goto(f"{hub.url}/")
    attention = page.locator("#attention")
    attention.get_by_role("link", name=OUTAGE).wait_for(timeout=TIMEOUT)
    assert attention.locator(".incident").count() == 1
    cards = page.locator("#health-cards")
    cards.get_by_text("Need attention").wait_for(timeout=TIMEOUT)
    figures = [int(text) for text in cards.locator("h1, h2, h3, h4").all_inner_texts()]
    total, buckets = figures[0], figures[1:]
    assert total >= 1 and sum(buckets) == total
    screenshot(page, "failure-truth-overview")

    # The Integrations list: connected access, but all four streams failing.
    page.goto(f"{hub.url}/integrations")
    page.get_by_label("Search integrations").fill("Truth")
    row = page.get_by_role("row", name=re.compile("Truth store"))
    row.locator(".health-badge").get_by_text("failing").wait_for(timeout=TIMEOUT)
    assert "4/4" in row.locator(".health-badge").inner_text()
    screenshot(page, "failure-truth-integrations")

    sandbox(hub, "PUT", f"/faults/shopify/{SHOP}", {})
    context.close()
