"""An admin makes a Hub API key in Settings -> API keys, copies it from the dialog (the only
time it is shown), a client uses it against the running hub's /api/v1, the admin revokes it
and the client is refused. The API's reference page is served under the hub's CSP."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Hub, screenshot, sign_in

pytestmark = pytest.mark.browser
TIMEOUT = 30_000


def test_admin_creates_copies_and_revokes_an_api_key(hub: Hub, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{hub.url}/settings/api-keys")
    page.get_by_label("Name of the new key").fill("warehouse ERP")
    page.get_by_text("integrations:read", exact=True).click()
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-api-key")
    shown.wait_for(timeout=TIMEOUT)
    key = shown.inner_text().strip()
    assert key.startswith("chk_")
    screenshot(page, "api-key-created")
    page.get_by_role("button", name="Done").click()
    page.get_by_role("cell", name="warehouse ERP", exact=True).wait_for(timeout=TIMEOUT)
    assert key not in page.content()  # listed by its prefix only, once the dialog is closed

    api = f"{hub.url}/api/v1"
    answer = httpx.get(f"{api}/integrations", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and "integrations" in answer.json()
    assert answer.headers["x-request-id"]
    docs = httpx.get(f"{api}/docs")
    assert docs.status_code == 200 and "/integrations/{integration_id}/records/orders" in docs.text
    assert httpx.get(f"{api}/openapi.json").json()["openapi"].startswith("3.1")

    page.get_by_role("button", name="Revoke warehouse ERP").click()
    page.get_by_text("revoked", exact=True).wait_for(timeout=TIMEOUT)
    screenshot(page, "api-keys")
    refused = httpx.get(f"{api}/integrations", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    context.close()
