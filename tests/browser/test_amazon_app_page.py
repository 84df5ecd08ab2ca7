"""Settings → Amazon app in a browser: an admin sees the LWA secret's deadline, enters a new
secret that is never shown back, confirms the switch; a viewer cannot open the page."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Hub, screenshot, sign_in

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
NEW_SECRET = "amzn1.oa2-cs.v1.entered-in-the-browser-0123456789"


def test_admin_rotates_the_lwa_secret_and_a_viewer_is_refused(hub: Hub, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{hub.url}/settings/amazon")
    secret = page.get_by_label("LWA client secret")
    secret.get_by_text("days left").wait_for(timeout=TIMEOUT)
    assert "HUB_AMAZON_CLIENT_SECRET (environment)" in secret.inner_text()

    page.get_by_label("New client secret").fill(NEW_SECRET)
    page.get_by_role("button", name="Use this secret").click()
    page.get_by_text("Switching: the new secret is in use").wait_for(timeout=TIMEOUT)
    assert "entered in Settings (encrypted)" in secret.inner_text()
    assert page.get_by_label("New client secret").input_value() == ""
    assert NEW_SECRET not in page.content()
    screenshot(page, "settings-amazon-switching")

    page.get_by_role("button", name="Confirm the switch").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Confirm the switch").click()
    page.get_by_text("Switch confirmed").wait_for(timeout=TIMEOUT)
    page.get_by_text("Switching: the new secret is in use").wait_for(
        state="detached", timeout=TIMEOUT
    )
    context.close()

    hub.cli(
        "users", "create", "--email", "amazon-viewer@example.com", "--role", "viewer",
        stdin="viewer-password-2\n",
    )  # fmt: skip
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, "amazon-viewer@example.com", "viewer-password-2")
    page.goto(f"{hub.url}/settings/amazon")
    page.get_by_text("Only admins can open that page.").wait_for(timeout=TIMEOUT)
    assert page.get_by_label("New client secret").count() == 0
    context.close()
