"""`hub doctor` against a standalone sandbox configured as if it were the real platforms:
every check passes; wrong app credentials, an unreachable public URL or an unmigrated
database each fail with a line that says what to fix."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from connectors.base import StoredCredential
from connectors.shopify.client import _throttles
from dashboard import cli, migrations
from dashboard.api import health
from dashboard.db import session_scope
from dashboard.models import SchedulerLease
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.vault import generate_key_spec
from tests.conftest import reset_caches
from tests.sandbox_server import (
    apps,
    control_headers,
    free_port,
    running_sandbox,
    serving,
    shopify_install,
)

SHOP = "doctor-test.myshopify.com"


@pytest.fixture
def sandbox() -> Iterator[str]:
    _throttles.clear()
    with running_sandbox(seed=3) as (base, _app):
        yield base


@pytest.fixture
def public_url() -> Iterator[str]:
    """The hub's health routes on a real port: what the public URL reaches."""
    port = free_port()
    with serving(Starlette(routes=health.routes), port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def real_platform_hub(
    hub_env: Path, sandbox: str, public_url: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A migrated hub with the sandbox as its platforms (HUB_SANDBOX=false: no sandbox
    defaults), one connected shop and a scheduler lease held by a running hub."""
    settings = {
        "HUB_SANDBOX": "false",
        "HUB_PUBLIC_URL": public_url,
        "HUB_ENCRYPTION_KEYS": generate_key_spec("prod1"),
        "HUB_SHOPIFY_BASE_URL": f"{sandbox}/shopify",
        "HUB_AMAZON_BASE_URL": f"{sandbox}/amazon",
        # The sandbox's apps, as a real app's credentials would be set.
        "HUB_SHOPIFY_CLIENT_ID": apps(sandbox).shopify_client_id,
        "HUB_SHOPIFY_CLIENT_SECRET": apps(sandbox).shopify_client_secret,
        "HUB_AMAZON_APP_ID": apps(sandbox).amazon_app_id,
        "HUB_AMAZON_CLIENT_ID": apps(sandbox).amazon_client_id,
        "HUB_AMAZON_CLIENT_SECRET": apps(sandbox).amazon_client_secret,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    migrations.upgrade_head()
    httpx.post(
        f"{sandbox}/_sandbox/shopify/shops", json={"shop": SHOP}, headers=control_headers(sandbox)
    ).raise_for_status()
    with session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name="Doctor", shop_domain=SHOP
        )
        save_credential(
            session=session,
            integration_id=integration.id,
            credential=StoredCredential("access_token", shopify_install(sandbox, SHOP), []),
        )
        mark_connected(session=session, integration_id=integration.id)
        session.add(SchedulerLease(
            name="scheduler", holder="hub-host:4242",
            expires_at=datetime.now(UTC) + timedelta(seconds=30),
        ))  # fmt: skip
    return public_url


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, list[str]]]:
    """Exit code and the lines of each check, by check name."""
    reset_caches()
    code = cli.main(["doctor", *args])
    lines: dict[str, list[str]] = {}
    current = ""
    for line in capsys.readouterr().out.splitlines():
        if line.startswith(("ok", "warn", "fail")):
            current = line[6:20].strip()
            lines.setdefault(current, []).append(line)
        elif line.strip().startswith("fix:"):
            lines[current][-1] += " | " + line.strip()
    return code, lines


def statuses(lines: dict[str, list[str]]) -> dict[str, set[str]]:
    return {name: {line.split()[0] for line in found} for name, found in lines.items()}


def test_doctor_passes_against_a_sandbox_configured_as_the_real_platforms(
    real_platform_hub: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys)
    assert code == 0, lines
    assert statuses(lines) == {
        "configuration": {"ok"},
        "database": {"ok"},
        "credentials": {"ok"},
        "public url": {"warn", "ok"},  # http on loopback: fine here, refused in production
        "shopify app": {"ok"},
        "shopify urls": {"ok"},
        "amazon app": {"ok"},
        "amazon urls": {"ok"},
        # A hub configured today cannot know when the secret was generated: it asks.
        "amazon secret": {"warn"},
        "clock": {"ok"},
        "disk": {"ok"},
        "scheduler": {"ok"},
    }
    assert "all 1 decrypt" in lines["credentials"][0]
    assert "credentials accepted by doctor-test.myshopify.com" in lines["shopify app"][0]
    assert "LWA credentials accepted" in lines["amazon app"][0]
    # What the operator copies into the apps' settings.
    assert f"{real_platform_hub}/api/oauth/shopify/callback" in lines["shopify urls"][0]
    assert f"{real_platform_hub}/api/webhooks/shopify" in lines["shopify urls"][0]
    assert f"{real_platform_hub}/api/oauth/amazon/callback" in lines["amazon urls"][0]
    assert f"{real_platform_hub}/api/oauth/amazon/login" in lines["amazon urls"][0]
    assert "hub amazon rotate-secret --set-at" in lines["amazon secret"][0]
    assert "hub-host:4242" in lines["scheduler"][0]


def test_doctor_fails_with_clear_lines_on_bad_credentials(
    real_platform_hub: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SHOPIFY_CLIENT_SECRET", "shpss_wrong_secret")
    monkeypatch.setenv("HUB_AMAZON_CLIENT_ID", "amzn1.application-oa2-client.unknown")
    code, lines = doctor(capsys)
    assert code == 1
    [shopify] = lines["shopify app"]
    assert shopify.startswith("fail") and "Shopify refused the app's credentials" in shopify
    assert "invalid_client" in shopify and "HUB_SHOPIFY_CLIENT_SECRET" in shopify
    [amazon] = lines["amazon app"]
    assert amazon.startswith("fail") and "Login with Amazon refused the LWA credentials" in amazon
    assert "HUB_AMAZON_CLIENT_ID" in amazon
    assert "shpss_wrong_secret" not in str(lines)
    assert statuses(lines)["database"] == {"ok"}  # the rest still says what it found


def test_doctor_fails_on_an_unreachable_hub_a_stale_schema_and_missing_keys(
    real_platform_hub: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_PUBLIC_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", generate_key_spec("prod2"))  # prod1 gone
    reset_caches()
    migrations.command.downgrade(migrations.alembic_config(), "-1")
    code, lines = doctor(capsys)
    assert code == 1
    assert lines["database"][0].startswith("fail") and "run `hub migrate`" in lines["database"][0]
    assert any(
        line.startswith("fail") and "/api/health unreachable" in line
        for line in lines["public url"]
    )
    [credentials] = lines["credentials"]
    assert credentials.startswith("fail") and "1 under 'prod1' do not decrypt" in credentials
    assert "add key(s) prod1 back to HUB_ENCRYPTION_KEYS" in credentials


def test_doctor_without_a_shop_says_how_to_check_shopify(
    hub_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SANDBOX", "false")
    monkeypatch.setenv("HUB_SHOPIFY_CLIENT_ID", "client")
    monkeypatch.setenv("HUB_SHOPIFY_CLIENT_SECRET", "secret")
    reset_caches()
    migrations.upgrade_head()
    _, lines = doctor(capsys)
    assert lines["shopify app"][0].startswith("warn")
    assert "hub doctor --shop your-dev-store.myshopify.com" in lines["shopify app"][0]


def test_doctor_refuses_a_shop_that_is_not_a_shopify_domain(
    real_platform_hub: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys, "--shop", "evil.example.com")
    assert code == 1
    [shopify] = lines["shopify app"]
    assert shopify.startswith("fail") and "'evil.example.com'" in shopify
