"""Every page passes axe-core (no serious or critical violation) in light and dark mode, and a
keyboard alone completes the new-integration wizard, with a focus ring on what it reaches, and
opens and closes dialogs, menus and the records side panel.

The hub is shared: the first test connects a Shopify store through the sandbox so that runs,
records, logs and the integration's tabs have something to show, and creates a connect link
for the merchant's page.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Hub,
    Seeded,
    axe_violations,
    focus_ring_visible,
    screenshot,
    sign_in,
    tab_to,
)

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
INTEGRATION_TABS = ("Status", "Streams", "Runs", "Logs", "Webhooks", "Connect links", "Settings")


def heading(name: str) -> Callable:
    return lambda page: page.get_by_role("heading", name=name, exact=True).first.wait_for(
        timeout=TIMEOUT
    )


def text(words: str) -> Callable:
    # Visible only: a select's hidden native <option> may hold the same words.
    return lambda page: page.get_by_text(words).filter(visible=True).first.wait_for(
        timeout=TIMEOUT
    )


# Signed-in pages: (name, path, what shows once its data is loaded).
SIGNED_IN_PAGES: tuple[tuple[str, str, Callable], ...] = (
    ("overview", "/", text("Records synced per hour")),
    ("integrations", "/integrations", text("Axe store")),
    ("runs", "/runs", text("Axe store")),
    ("records", "/records", text("gid://shopify/Product/")),
    ("logs", "/logs", heading("Logs")),
    ("settings", "/settings", heading("Settings")),
    ("settings-account", "/settings/account", text("Signed in as")),
    ("settings-users", "/settings/users", text(ADMIN_EMAIL)),
    ("settings-amazon-app", "/settings/amazon", heading("Amazon app")),
    ("settings-go-live", "/settings/go-live", heading("Go-live check")),
)


def check(page, where: str, found: list[str]) -> None:
    """Let the page's entrance animations end (a half-faded text has a false contrast), move
    the pointer off whatever the last click left it on (axe checks the resting colours), then
    record axe's serious and critical violations."""
    page.mouse.move(1, 1)
    page.wait_for_timeout(400)
    for violation in axe_violations(page):
        found.append(
            f"{where}: {violation['id']} ({violation['impact']}) {violation['help']}; "
            f"{violation['targets']}; {violation['summary'][:300]}"
        )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_passes_axe(hub: Hub, browser, seeded: Seeded, scheme: str) -> None:
    found: list[str] = []
    # bypass_csp: the hub's Content-Security-Policy rightly refuses the injected axe script.
    context = browser.new_context(color_scheme=scheme, bypass_csp=True)
    page = context.new_page()

    page.goto(f"{hub.url}/login")
    page.get_by_role("button", name="Sign in").wait_for(timeout=TIMEOUT)
    # The hub follows the system's colour mode: this really is the mode under test.
    page.wait_for_function(
        f"() => document.documentElement.classList.contains('{scheme}')", timeout=TIMEOUT
    )
    check(page, f"login [{scheme}]", found)

    page.goto(seeded.connect_link)  # the merchant's page: no sign-in
    page.get_by_role("button", name="Approve").wait_for(timeout=TIMEOUT)
    check(page, f"merchant connect [{scheme}]", found)

    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    for name, path, ready in SIGNED_IN_PAGES:
        page.goto(f"{hub.url}{path}")
        ready(page)
        check(page, f"{name} [{scheme}]", found)

    # The records side panel, open beside the table.
    page.goto(f"{hub.url}/records")
    page.get_by_role("button", name=re.compile("^Details of ")).first.click()
    panel = page.locator("#record-drawer")
    panel.get_by_role("button", name="Copy JSON").wait_for(timeout=TIMEOUT)
    check(page, f"records side panel [{scheme}]", found)

    page.goto(seeded.integration_url)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    for tab in INTEGRATION_TABS:
        page.get_by_role("tab", name=tab).click()
        page.get_by_role("tabpanel").wait_for(timeout=TIMEOUT)
        check(page, f"integration {tab} tab [{scheme}]", found)

    # Open layers too: a confirmation dialog (Settings tab), the bell's popover, the menu.
    page.get_by_role("button", name="Disconnect").click()
    dialog = page.get_by_role("alertdialog")
    dialog.wait_for(timeout=TIMEOUT)
    check(page, f"disconnect dialog [{scheme}]", found)
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden", timeout=TIMEOUT)
    page.get_by_role("button", name=re.compile("^Notifications")).click()
    page.get_by_role("dialog").wait_for(timeout=TIMEOUT)
    check(page, f"notifications [{scheme}]", found)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="User menu").click()
    page.get_by_role("menuitem", name="Sign out").wait_for(timeout=TIMEOUT)
    check(page, f"user menu [{scheme}]", found)
    page.keyboard.press("Escape")

    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Shop domain").wait_for(timeout=TIMEOUT)
    check(page, f"wizard Shopify details [{scheme}]", found)
    page.get_by_label("Name").fill(f"Axe wizard store {scheme}")
    page.get_by_label("Shop domain").fill(f"axe-wizard-{scheme}.myshopify.com")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create connect link").wait_for(timeout=TIMEOUT)
    check(page, f"wizard streams [{scheme}]", found)
    page.get_by_role("button", name="Create connect link").click()
    page.locator("#connect-link").wait_for(timeout=TIMEOUT)
    check(page, f"wizard connect link [{scheme}]", found)
    page.get_by_role("button", name="Add another").click()
    page.get_by_role("button", name="Choose Amazon Seller Central").wait_for(timeout=TIMEOUT)
    check(page, f"wizard platform [{scheme}]", found)
    page.get_by_role("button", name="Choose Amazon Seller Central").click()
    page.get_by_text("Marketplaces", exact=True).wait_for(timeout=TIMEOUT)
    check(page, f"wizard Amazon details [{scheme}]", found)
    context.close()

    assert not found, "axe found serious or critical violations:\n" + "\n".join(found)


def test_the_wizard_is_completed_by_keyboard_alone(hub: Hub, browser, seeded: Seeded) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{hub.url}/integrations/new")
    amazon = page.get_by_role("button", name="Choose Amazon Seller Central")
    shopify = page.get_by_role("button", name="Choose Shopify")
    expect(shopify).to_be_enabled(timeout=TIMEOUT)  # once the page is hydrated

    # Space on a platform card chooses it, as on any button; Back returns to the cards.
    tab_to(page, amazon)
    assert focus_ring_visible(page), "the focused platform card shows no focus ring"
    page.keyboard.press("Space")
    page.get_by_text("Marketplaces", exact=True).wait_for(timeout=TIMEOUT)
    tab_to(page, page.get_by_role("button", name="Back"))
    page.keyboard.press("Enter")

    # Enter on the Shopify card, then the fields and buttons by Tab.
    tab_to(page, shopify)
    assert focus_ring_visible(page)
    page.keyboard.press("Enter")
    name = page.get_by_label("Name")
    tab_to(page, name)
    assert focus_ring_visible(page), "the focused text field shows no focus ring"
    page.keyboard.type("Keyboard store")
    tab_to(page, page.get_by_label("Shop domain"))
    page.keyboard.type("keyboard-store.myshopify.com")
    next_button = page.get_by_role("button", name="Next")
    tab_to(page, next_button)
    assert focus_ring_visible(page), "the focused button shows no focus ring"
    page.keyboard.press("Enter")

    create_link = page.get_by_role("button", name="Create connect link")
    tab_to(page, create_link)
    page.keyboard.press("Space")
    link = page.locator("#connect-link").inner_text(timeout=TIMEOUT)
    assert re.match(rf"{re.escape(hub.url)}/connect/[\w-]+$", link), link
    screenshot(page, "wizard-by-keyboard")

    # The link belongs to the integration the keyboard created.
    tab_to(page, page.get_by_role("link", name="Open the integration"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=TIMEOUT)
    page.get_by_role("heading", name="Keyboard store").wait_for(timeout=TIMEOUT)
    context.close()


def test_menus_and_dialogs_work_by_keyboard(hub: Hub, browser, seeded: Seeded) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)

    # A confirmation dialog: opened with Enter, focus inside it, Escape closes it and gives
    # the focus back to the button that opened it; nothing was disconnected.
    page.goto(seeded.integration_url)
    page.get_by_role("tab", name="Settings").click()
    disconnect = page.get_by_role("button", name="Disconnect")
    tab_to(page, disconnect)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("alertdialog")
    dialog.wait_for(timeout=TIMEOUT)
    assert dialog.evaluate("el => el.contains(document.activeElement)")
    assert focus_ring_visible(page), "the focused control in the dialog shows no focus ring"
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden", timeout=TIMEOUT)
    assert disconnect.evaluate("el => el === document.activeElement")
    page.get_by_role("tab", name="Status").click()
    page.get_by_text("connected").first.wait_for(timeout=TIMEOUT)

    # The records side panel: a row's Details opened with Enter puts the focus in the panel;
    # Escape closes it and gives the focus back to that Details button.
    page.goto(f"{hub.url}/records")
    details = page.get_by_role("button", name=re.compile("^Details of ")).first
    tab_to(page, details)
    page.keyboard.press("Enter")
    panel = page.locator("#record-drawer")
    panel.get_by_role("button", name="Copy JSON").wait_for(timeout=TIMEOUT)
    expect(panel.get_by_role("button", name="Close")).to_be_focused(timeout=TIMEOUT)
    assert focus_ring_visible(page), "the focused control in the panel shows no focus ring"
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0, timeout=TIMEOUT)
    expect(details).to_be_focused(timeout=TIMEOUT)
    # Escape from elsewhere on the page closes it too (the search field has the focus).
    details.press("Enter")
    panel.get_by_role("button", name="Copy JSON").wait_for(timeout=TIMEOUT)
    page.get_by_label("Search records").focus()
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0, timeout=TIMEOUT)

    # The user menu: Enter opens it, arrows move, Enter chooses.
    tab_to(page, page.get_by_role("button", name="User menu"))
    page.keyboard.press("Enter")
    page.get_by_role("menuitem", name="Account").wait_for(timeout=TIMEOUT)
    while not page.get_by_role("menuitem", name="Account").evaluate(
        "el => el === document.activeElement"
    ):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url("**/settings/account", timeout=TIMEOUT)
    context.close()


def test_disabled_buttons_still_look_disabled(hub: Hub, browser, seeded: Seeded) -> None:
    """The contrast fixes darken enabled buttons only: with nothing selected, the bulk bar's
    Pause selected is drawn apart from an enabled button of the same kind."""
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{hub.url}/integrations")
    pause = page.get_by_role("button", name="Pause selected")
    expect(pause).to_be_disabled(timeout=TIMEOUT)
    disabled_color = pause.evaluate("el => getComputedStyle(el).color")
    page.get_by_role("checkbox", name="Select this page").click()
    expect(pause).to_be_enabled(timeout=TIMEOUT)
    page.mouse.move(1, 1)
    assert pause.evaluate("el => getComputedStyle(el).color") != disabled_color
    context.close()
