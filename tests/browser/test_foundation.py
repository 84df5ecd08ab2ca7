"""A newcomer's first minutes: sign in, see the empty hub; a viewer cannot manage users."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Hub, screenshot, sign_in

pytestmark = pytest.mark.browser
TIMEOUT = 30_000


def test_admin_signs_in_and_sees_the_empty_hub(hub: Hub, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{hub.url}/integrations")
    page.wait_for_url("**/login**", timeout=TIMEOUT)  # signed-out users land on sign-in
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_text("No integrations yet").wait_for(timeout=TIMEOUT)
    screenshot(page, "overview-empty")

    page.get_by_role("link", name="Integrations").first.click()
    page.wait_for_url(f"{hub.url}/integrations**", timeout=TIMEOUT)
    page.get_by_text("An integration connects one Shopify store").wait_for(timeout=TIMEOUT)
    screenshot(page, "integrations-empty")

    page.reload()  # the session survives a reload
    page.get_by_text("An integration connects one Shopify store").wait_for(timeout=TIMEOUT)
    assert ADMIN_PASSWORD not in page.content()

    page.goto(f"{hub.url}/settings/users")
    page.get_by_role("button", name="Add user").wait_for(timeout=TIMEOUT)
    screenshot(page, "users")
    context.close()


def test_wrong_password_is_refused_with_a_message(hub: Hub, browser) -> None:
    page = browser.new_page()
    page.goto(f"{hub.url}/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").get_by_text("Wrong email or password.").wait_for(timeout=TIMEOUT)
    assert page.url.rstrip("/").endswith("/login")
    page.close()


def test_viewer_is_refused_the_users_page(hub: Hub, browser) -> None:
    hub.cli(
        "users",
        "create",
        "--email",
        "viewer@example.com",
        "--role",
        "viewer",
        stdin="viewer-password-1\n",
    )
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, "viewer@example.com", "viewer-password-1")
    page.goto(f"{hub.url}/settings/users")
    page.get_by_text("Only admins can open that page.").wait_for(timeout=TIMEOUT)
    page.wait_for_url(f"{hub.url}/", timeout=TIMEOUT)
    page.get_by_text("Ask a manager to add the first integration.").wait_for(timeout=TIMEOUT)
    assert page.get_by_role("button", name="Add user").count() == 0
    assert "Users" not in [link.inner_text() for link in page.get_by_role("link").all()]
    screenshot(page, "viewer-refused")

    page.get_by_role("button", name="User menu").click()
    page.get_by_role("menuitem", name="Sign out").click()
    page.wait_for_url("**/login**", timeout=TIMEOUT)
    page.goto(f"{hub.url}/integrations")
    page.wait_for_url("**/login**", timeout=TIMEOUT)  # the session is gone after sign-out
    context.close()
