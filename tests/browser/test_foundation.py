"""A newcomer's first minutes: sign in, see the empty hub; a viewer cannot manage users; an
admin rotates the Amazon app's LWA secret in Settings."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Hub,
    screenshot,
    sent_to_sign_in,
    sign_in,
)

pytestmark = pytest.mark.browser
TIMEOUT = 30_000


def test_admin_signs_in_and_sees_the_empty_hub(hub: Hub, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    sent_to_sign_in(page, f"{hub.url}/integrations")  # signed-out users land on sign-in
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
    # Back on the sign-in page (the form posts to /api/session, which redirects here with
    # ?error=refused); the password never went in the URL.
    assert "/login" in page.url and "not-the-password" not in page.url
    page.close()


def test_the_hub_opened_at_another_address_says_where_it_answers(hub: Hub, browser) -> None:
    """The demo opened at 127.0.0.1 instead of its public localhost URL: the page cannot
    reach the hub's websocket, so it says where the hub answers and links there; a sign-in
    sent from there is refused with the same way out."""
    elsewhere = hub.url.replace("localhost", "127.0.0.1")
    page = browser.new_page()
    page.goto(f"{elsewhere}/login?next=/runs")
    banner = page.get_by_role("alert").filter(has_text="This hub answers at")
    banner.wait_for(timeout=TIMEOUT)
    assert f"not at {elsewhere}" in banner.inner_text()
    screenshot(page, "login-wrong-address")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Cross-origin request refused").wait_for(timeout=TIMEOUT)
    page.get_by_role("link", name=f"{hub.url}/login").click()
    page.wait_for_url(f"{hub.url}/login**", timeout=TIMEOUT)

    page.goto(f"{elsewhere}/login?next=/runs")
    same_page = page.get_by_role("alert").get_by_role("link")
    assert re.fullmatch(rf"Open {re.escape(hub.url)}/login/?\?next=/runs", same_page.inner_text())
    same_page.click()
    page.wait_for_url(f"{hub.url}/login**", timeout=TIMEOUT)
    page.get_by_role("button", name="Sign in").wait_for(timeout=TIMEOUT)
    # At the hub's own address the page says nothing of the kind.
    page.wait_for_load_state("load")
    page.wait_for_timeout(1_000)
    assert page.locator("#hub-wrong-address").count() == 0
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
    sent_to_sign_in(page, f"{hub.url}/integrations")  # the session is gone after sign-out
    context.close()


def test_admin_resets_a_password_and_the_user_changes_it(hub: Hub, browser) -> None:
    email = "forgetful@example.com"
    hub.cli("users", "create", "--email", email, "--role", "viewer", stdin="first-password-1\n")
    user_context = browser.new_context()
    user_page = user_context.new_page()
    sign_in(user_page, hub, email, "first-password-1")

    admin_context = browser.new_context()
    admin = admin_context.new_page()
    sign_in(admin, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    admin.goto(f"{hub.url}/settings/users")
    row = admin.get_by_role("row").filter(has_text=email)
    row.get_by_role("button", name="Reset password").click(timeout=TIMEOUT)
    confirm = admin.get_by_role("alertdialog")
    confirm.get_by_text("they are signed out everywhere").wait_for(timeout=TIMEOUT)
    confirm.get_by_role("button", name="Reset password").click()
    shown = admin.get_by_role("dialog")
    shown.get_by_text(f"New password for {email}").wait_for(timeout=TIMEOUT)
    password = shown.locator("#one-time-password").inner_text().strip()
    assert len(password) >= 15
    screenshot(admin, "users-password-reset")
    shown.get_by_role("button", name="Done").click()
    shown.wait_for(state="hidden", timeout=TIMEOUT)
    admin.reload()  # shown once: gone from the page, and from a reload
    row.get_by_role("button", name="Reset password").wait_for(timeout=TIMEOUT)
    assert password not in admin.content()
    # An admin's own row offers the Account page instead of a reset.
    own = admin.get_by_role("row").filter(has_text=ADMIN_EMAIL)
    assert own.get_by_role("button", name="Reset password").count() == 0
    own.get_by_role("link", name="Change your password").wait_for()
    admin.goto(f"{hub.url}/settings")
    # The audit log says it in words, naming the admin who did it.
    admin.get_by_text(f"{ADMIN_EMAIL} reset the password of").first.wait_for(timeout=TIMEOUT)
    admin.get_by_text("Page 1 of 1").wait_for(timeout=TIMEOUT)  # the log's pager
    admin_context.close()

    # The user's session ended: the next page load asks to sign in; the old password is gone.
    sent_to_sign_in(user_page, f"{hub.url}/integrations")
    user_page.get_by_label("Email").fill(email)
    user_page.get_by_label("Password").fill("first-password-1")
    user_page.get_by_role("button", name="Sign in").click()
    user_page.get_by_role("alert").get_by_text("Wrong email or password.").wait_for(timeout=TIMEOUT)
    sign_in(user_page, hub, email, password)

    # Then they pick their own password on the Account page (the user menu leads there).
    user_page.get_by_role("button", name="User menu").click()
    user_page.get_by_role("menuitem", name="Account").click()
    user_page.wait_for_url("**/settings/account", timeout=TIMEOUT)

    def change(current: str, new: str, repeat: str) -> None:
        user_page.get_by_label("Current password").fill(current)
        user_page.get_by_label("New password (10+ characters)").fill(new)
        user_page.get_by_label("Repeat the new password").fill(repeat)
        user_page.get_by_role("button", name="Change password").click()

    change("not-my-password", "chosen-password-2", "chosen-password-2")
    user_page.get_by_text("The current password is wrong.").wait_for(timeout=TIMEOUT)
    change(password, "short", "short")
    user_page.get_by_text("Password must have at least 10 characters.").wait_for(timeout=TIMEOUT)
    change(password, "chosen-password-2", "chosen-password-3")
    user_page.get_by_text("The new passwords do not match.").wait_for(timeout=TIMEOUT)
    change(password, "chosen-password-2", "chosen-password-2")
    user_page.get_by_text("Password changed.").wait_for(timeout=TIMEOUT)
    screenshot(user_page, "account")
    user_page.reload()  # this session stays signed in
    user_page.get_by_text("Signed in as").wait_for(timeout=TIMEOUT)
    user_context.close()

    fresh = browser.new_context()
    page = fresh.new_page()
    sign_in(page, hub, email, "chosen-password-2")
    fresh.close()


# Settings → Amazon app: an admin sees the LWA secret's deadline, enters a new secret that is
# never shown back and confirms the switch; a viewer cannot open the page.
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
