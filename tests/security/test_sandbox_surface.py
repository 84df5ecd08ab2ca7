"""Issue 12, item 5: the sandbox is a development tool, never an attack surface.

Each test replays what an attacker did against a hub started with `make run` (the sandbox
mounted at /sandbox) and checks that it is refused now.
"""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette

from connectors.sandbox.consent import form_fields
from dashboard.api import build_api
from dashboard.settings import SettingsError, get_settings, load_settings
from tests.conftest import reset_caches
from tests.sandbox_server import shopify_consent

HUB = "http://localhost:3000"
SHOP = "victim.myshopify.com"
EVIL = "https://evil.example/steal"
INTERNAL = "http://127.0.0.1:6379/"  # any port on the hub's own machine


@pytest.fixture
async def make_run_hub(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """The hub as `make run` starts it: sandbox mounted, its token generated into the data
    dir (no HUB_SANDBOX_CONTROL_TOKEN)."""
    monkeypatch.delenv("HUB_SANDBOX_CONTROL_TOKEN", raising=False)
    monkeypatch.setenv("HUB_SANDBOX_DEMO", "false")
    reset_caches()
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    async with httpx.AsyncClient(transport=transport, base_url=HUB) as client:
        yield client


def hub_token() -> str:
    return (get_settings().data_dir / "sandbox-control.token").read_text().strip()


async def test_control_api_without_the_token_is_refused_and_changes_nothing(
    make_run_hub: httpx.AsyncClient,
) -> None:
    """The SSRF of the issue: an internal compliance_url, then a compliance request."""
    app = "/sandbox/_sandbox/shopify/app"
    set_url = await make_run_hub.put(app, json={"compliance_url": INTERNAL})
    assert set_url.status_code == 401
    assert INTERNAL not in set_url.text
    for method, path, body in (
        ("POST", "/sandbox/_sandbox/shopify/shops", {"shop": SHOP}),
        ("POST", f"/sandbox/_sandbox/shopify/shops/{SHOP}/compliance", {"topic": "shop/redact"}),
        ("PUT", "/sandbox/_sandbox/faults/shopify", {"error_rate": 1.0}),
        ("POST", "/sandbox/_sandbox/amazon/sellers/A1DEMOSELLER0NA/revoke", None),
        ("PUT", "/sandbox/_sandbox/amazon/app", {"redirect_uris": [EVIL]}),
        ("GET", "/sandbox/_sandbox/shopify/stats", None),
        ("GET", f"/sandbox/_sandbox/shopify/shops/{SHOP}/usage", None),
    ):
        answer = await make_run_hub.request(method, path, json=body)
        assert answer.status_code == 401, (method, path)
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (await make_run_hub.put(app, json={}, headers=wrong)).status_code == 401

    # The token holder (the hub, its tests) sees the app unchanged: the hub's own URL.
    owner = {"Authorization": f"Bearer {hub_token()}"}
    config = (await make_run_hub.put(app, json={}, headers=owner)).json()
    assert config["compliance_url"] == f"{HUB}/api/webhooks/shopify"
    assert config["redirect_uris"] == [f"{HUB}/api/oauth/shopify/callback"]


def test_the_control_token_file_is_private(make_run_hub: httpx.AsyncClient) -> None:
    path = get_settings().data_dir / "sandbox-control.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_shopify_consent_never_redirects_to_a_foreign_redirect_uri(
    make_run_hub: httpx.AsyncClient, method: str
) -> None:
    params = {
        "client_id": get_settings().shopify_client_id,
        "scope": "read_products",
        "redirect_uri": EVIL,
        "state": "x",
        "decision": "approve",
    }
    url = f"/sandbox/shopify/{SHOP}/admin/oauth/authorize"
    if method == "GET":
        answer = await make_run_hub.get(f"{url}?{urlencode(params)}")
    else:
        answer = await make_run_hub.post(url, data=params)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "redirect_uri is not whitelisted" in answer.text
    assert "evil.example" not in answer.text  # no form that would post it back either
    # The hub's own callback still gets its code, from the consent page's form.
    params["redirect_uri"] = f"{HUB}/api/oauth/shopify/callback"
    params.pop("decision")
    approved = await shopify_consent(make_run_hub, url, params)
    assert approved.status_code == 302
    assert approved.headers["location"].startswith(f"{HUB}/api/oauth/shopify/callback?code=")


async def test_amazon_consent_never_redirects_to_a_foreign_redirect_uri(
    make_run_hub: httpx.AsyncClient,
) -> None:
    page = "/sandbox/amazon/sellercentral/sellercentral.amazon.com/apps/authorize/consent"
    query = {"application_id": get_settings().amazon_app_id, "state": "x", "redirect_uri": EVIL}
    approve = {"decision": "approve"}
    answer = await make_run_hub.post(f"{page}?{urlencode(query)}", data=approve)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "MD5101" in answer.text
    query["redirect_uri"] = f"{HUB}/api/oauth/amazon/callback"
    form = form_fields((await make_run_hub.get(f"{page}?{urlencode(query)}")).text)
    approved = await make_run_hub.post(f"{page}?{urlencode(query)}", data={**form, **approve})
    assert approved.status_code == 302
    assert approved.headers["location"].startswith(f"{HUB}/api/oauth/amazon/callback?")


async def test_the_published_sandbox_secret_opens_nothing(
    make_run_hub: httpx.AsyncClient,
) -> None:
    """A code for the hub's callback, exchanged with the secret printed in the old docs."""
    settings = get_settings()
    assert settings.shopify_client_secret != "sandbox-shopify-client-secret"
    assert settings.amazon_client_secret != "sandbox-amazon-client-secret"
    authorize = f"/sandbox/shopify/{SHOP}/admin/oauth/authorize"
    params = {
        "client_id": settings.shopify_client_id,
        "scope": "read_products",
        "redirect_uri": f"{HUB}/api/oauth/shopify/callback",
    }
    approved = await shopify_consent(make_run_hub, authorize, params)
    code = httpx.URL(approved.headers["location"]).params["code"]
    stolen = await make_run_hub.post(
        f"/sandbox/shopify/{SHOP}/admin/oauth/access_token",
        json={
            "client_id": settings.shopify_client_id,
            "client_secret": "sandbox-shopify-client-secret",
            "code": code,
        },
    )
    assert stolen.status_code == 400 and "access_token" not in stolen.text


async def test_cors_does_not_reflect_a_foreign_origin_with_credentials(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reflex wraps every route, the mounted sandbox included, in its CORS middleware: built
    here the way Reflex builds the served app (``App._add_cors`` around ``build_api``)."""
    import importlib

    from reflex.app import App

    import rxconfig

    reset_caches()
    # The hub's own rxconfig, as `hub serve` loads it (tests run outside the project root,
    # where Reflex would fall back to its default config).
    config = importlib.reload(rxconfig).config
    monkeypatch.setattr("reflex.app.get_config", lambda: config)
    top = Starlette()
    top.mount("", build_api(Starlette()))
    App._add_cors(top)
    headers = {"Origin": "https://evil.example", "Cookie": "session=victim"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=top), base_url=HUB) as c:
        simple = await c.get(f"/sandbox/shopify/{SHOP}/admin/oauth/authorize", headers=headers)
        preflight = await c.options(
            "/sandbox/_sandbox/shopify/app",
            headers={**headers, "Access-Control-Request-Method": "PUT",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
    for answer in (simple, preflight):
        assert answer.headers.get("access-control-allow-origin") in (None, HUB)


@pytest.mark.parametrize(
    "public_url", ["https://hub.example.com", "http://10.0.0.5:3000", "http://0.0.0.0:3000"]
)
def test_the_hub_refuses_to_start_with_the_sandbox_mounted_on_a_public_url(
    hub_env: Path, public_url: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(sandbox=True, public_url=public_url)
    assert "HUB_SANDBOX" in str(refused.value) and "HUB_PUBLIC_URL" in str(refused.value)


@pytest.mark.parametrize(
    "public_url", ["http://localhost:3000", "http://127.0.0.2:8000", "http://[::1]:3000"]
)
def test_the_sandbox_may_be_mounted_on_a_local_url(hub_env: Path, public_url: str) -> None:
    assert load_settings(sandbox=True, public_url=public_url).sandbox_mounted


async def test_without_hub_sandbox_nothing_is_mounted(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_SANDBOX", raising=False)
    reset_caches()
    assert get_settings().sandbox is False
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    async with httpx.AsyncClient(transport=transport, base_url=HUB) as client:
        for path in (
            "/sandbox/_sandbox/shopify/stats",
            f"/sandbox/shopify/{SHOP}/admin/oauth/authorize",
            "/sandbox/amazon/sellercentral/sellercentral.amazon.com/apps/authorize/consent",
        ):
            assert (await client.get(path)).status_code == 404, path
