"""The production profile refuses to start on what would hurt a real-platform hub, every
problem at once and naming its variable; `hub config show` prints no secret; a second host
with its own key under the same id is refused at start and flagged by `hub keys status`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import delete

from connectors.base import StoredCredential
from connectors.sandbox.access import sandbox_apps
from dashboard import migrations
from dashboard.db import session_scope
from dashboard.models import EncryptionKey
from dashboard.production_profile import production_problems
from dashboard.services.credentials import load_credential, save_credential
from dashboard.services.integrations import create_integration
from dashboard.services.lifespan import hub_lifespan
from dashboard.services.vault import (
    KeyMismatchError,
    ensure_keys_match,
    generate_key_spec,
    get_vault,
    key_fingerprint,
)
from dashboard.settings import SettingsError, load_settings
from tests.conftest import reset_caches

ROOT = Path(__file__).resolve().parents[1]
REAL_APPS = {
    "shopify_client_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "shopify_client_secret": "shpss_real_app_secret",
    "amazon_app_id": "amzn1.sp.solution.11111111-2222-3333-4444-555555555555",
    "amazon_client_id": "amzn1.application-oa2-client.0123456789abcdef",
    "amazon_client_secret": "amzn1.oa2-cs.v1.real-secret",
}
# A hub that once ran a sandbox keeps its control token: the sandbox apps' secrets are derived
# from it, and a production hub must not use them.
CONTROL_TOKEN = "staging-sandbox-control-token-0123456789"
SANDBOX_APPS = sandbox_apps(CONTROL_TOKEN)
FIT = {
    "env": "production",
    "sandbox_control_token": CONTROL_TOKEN,
    "sandbox": False,
    "public_url": "https://hub.example.com",
    "database_url": "postgresql://hub:pw@db.internal:5432/hub",
    "encryption_keys": generate_key_spec("prod1"),
    "admin_email": "ops@example.com",
    "admin_password": "a long first password",
    **REAL_APPS,
}


def hub(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "DATABASE_URL"
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", *args],
        capture_output=True, text=True, env=environment, timeout=120, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated(hub_env: Path) -> None:
    """No developer setting leaks in (hub_env clears HUB_*, changes into tmp_path)."""


# --- refusals, one variable at a time ---------------------------------------------------------


def test_a_fit_production_configuration_is_not_refused() -> None:
    assert production_problems(load_settings(**FIT), users_exist=False) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        # A standalone sandbox (a mounted one on a public URL is refused even earlier).
        ({"sandbox": True, "shopify_base_url": "http://127.0.0.1:8900/shopify",
          "amazon_base_url": "http://127.0.0.1:8900/amazon"}, "HUB_SANDBOX is on"),
        ({"encryption_keys": None}, "HUB_ENCRYPTION_KEYS is unset"),
        ({"public_url": "http://hub.example.com"}, "HUB_PUBLIC_URL must be the https://"),
        ({"shopify_client_secret": None}, "HUB_SHOPIFY_CLIENT_SECRET unset"),
        ({"amazon_client_id": None, "amazon_app_id": None}, "HUB_AMAZON_APP_ID, HUB_AMAZON_CLIENT_ID unset"),  # noqa: E501
        ({"shopify_client_id": "sandbox-shopify-client-id"}, "HUB_SHOPIFY_CLIENT_ID is the sandbox app's"),  # noqa: E501
        ({"amazon_client_secret": SANDBOX_APPS.amazon_client_secret}, "HUB_AMAZON_CLIENT_SECRET is the sandbox app's"),  # noqa: E501
        ({"admin_password": None}, "HUB_ADMIN_PASSWORD is unset and there is no user yet"),
    ],
)  # fmt: skip
def test_each_problem_is_refused_naming_its_variable(change: dict[str, object], named: str) -> None:
    problems = production_problems(load_settings(**{**FIT, **change}), users_exist=False)
    assert len(problems) == 1 and named in problems[0], problems


def test_no_platform_app_at_all_is_refused() -> None:
    apps_unset = dict.fromkeys(REAL_APPS)
    [problem] = production_problems(load_settings(**{**FIT, **apps_unset}), users_exist=False)
    assert "no platform app is configured" in problem


def test_one_platform_is_enough() -> None:
    amazon_unset = {"amazon_app_id": None, "amazon_client_id": None, "amazon_client_secret": None}
    assert production_problems(load_settings(**{**FIT, **amazon_unset}), users_exist=False) == []


def test_the_generated_key_file_is_fine_with_sqlite_on_one_host() -> None:
    alone = {**FIT, "database_url": None, "encryption_keys": None}
    assert production_problems(load_settings(**alone), users_exist=False) == []


def test_a_generated_admin_password_is_refused_only_when_the_admin_would_be_created() -> None:
    no_password = load_settings(**{**FIT, "admin_password": None})
    assert production_problems(no_password, users_exist=True) == []
    assert production_problems(no_password, users_exist=False, interactive=True) == []


def test_several_workers_without_redis_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRANIAN_WORKERS", "3")
    with pytest.raises(SettingsError, match="REDIS_URL"):
        load_settings(**FIT)
    assert production_problems(load_settings(**FIT, redis_url="redis://cache:6379/0")) == []


def test_a_public_https_url_alone_turns_the_profile_on() -> None:
    # (A sandbox mounted on a public URL is refused before any of this: see test_settings.)
    public = {"env": "prod", "public_url": "https://hub.example.com", "sandbox": False}
    assert any("no platform app" in p for p in production_problems(load_settings(**public)))
    for local in ("https://localhost:8443", "https://127.0.0.1:8443"):
        assert production_problems(load_settings(**{**public, "public_url": local})) == []
    # HUB_ENV=test or dev says "not production" explicitly (test harnesses, staging by hand).
    assert production_problems(load_settings(**{**public, "env": "test"})) == []


# --- at start, as an operator sees it ----------------------------------------------------------


def test_hub_serve_refuses_and_lists_every_problem_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert hub("migrate", env={"HUB_DATA_DIR": str(data)}, cwd=tmp_path).returncode == 0
    started = hub(
        "serve",
        env={
            "HUB_DATA_DIR": str(data),
            "HUB_ENV": "production",
            "HUB_PUBLIC_URL": "http://hub.example.com",
            "HUB_SHOPIFY_CLIENT_ID": "my-real-client-id",
            # A staging configuration left in place: a standalone sandbox and its apps.
            "HUB_SANDBOX": "true",
            "HUB_SHOPIFY_BASE_URL": "http://127.0.0.1:8900/shopify",
            "HUB_AMAZON_BASE_URL": "http://127.0.0.1:8900/amazon",
        },
        cwd=tmp_path,
    )
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    lines = lines[lines.index("hub: Refusing to start:") :]
    assert [line.split(" ")[2] for line in lines[1:]] == [
        "HUB_SANDBOX",
        "HUB_PUBLIC_URL",
        "HUB_SHOPIFY_CLIENT_SECRET",  # the sandbox's secret beside a real id
        "HUB_AMAZON_APP_ID",
        "HUB_AMAZON_CLIENT_ID",
        "HUB_AMAZON_CLIENT_SECRET",
        "HUB_ADMIN_PASSWORD",  # no user yet
    ]
    assert "Connector Hub on" not in started.stdout  # nothing was started


def test_ensure_admin_never_generates_a_password_in_production(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"HUB_DATA_DIR": str(data), "HUB_ENV": "production"}
    assert hub("migrate", env=env, cwd=tmp_path).returncode == 0
    refused = hub("users", "ensure-admin", env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "HUB_ADMIN_PASSWORD is unset" in refused.stderr
    assert not list(data.glob("password-*"))
    given = hub("users", "ensure-admin", env={**env, "HUB_ADMIN_EMAIL": "ops@example.com",
                "HUB_ADMIN_PASSWORD": "a long first password"}, cwd=tmp_path)  # fmt: skip
    assert given.returncode == 0 and "first admin created: ops@example.com" in given.stdout


def test_config_show_prints_the_effective_settings_without_a_secret(tmp_path: Path) -> None:
    secrets = {
        "HUB_ENCRYPTION_KEYS": generate_key_spec("prod1"),
        "HUB_SHOPIFY_CLIENT_SECRET": "shpss_do_not_print_me",
        "HUB_AMAZON_CLIENT_SECRET": "amzn1.oa2-cs.v1.do-not-print",
        "HUB_ADMIN_PASSWORD": "admin password never shown",
        "HUB_ALERT_WEBHOOK_SECRET": "alert-signing-secret",
        "HUB_METRICS_TOKEN": "metrics-bearer-token",
        "DATABASE_URL": "postgresql://hub:db-password-xyz@db.internal:5432/hub",
        "REDIS_URL": "redis://:redis-password-xyz@cache:6379/0",
    }
    shown = hub(
        "config", "show",
        env={"HUB_DATA_DIR": str(tmp_path / "data"), "HUB_SANDBOX": "false",
             "HUB_SHOPIFY_CLIENT_ID": "visible-client-id", **secrets},
        cwd=tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    output = shown.stdout + shown.stderr
    for name, value in secrets.items():
        secret = value.split(":", 1)[1] if name == "HUB_ENCRYPTION_KEYS" else value
        for part in (secret, "db-password-xyz", "redis-password-xyz"):
            if part in value:
                assert part not in output, f"{name} leaked"
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.strip()}
    assert "visible-client-id" in lines["HUB_SHOPIFY_CLIENT_ID"]
    assert (
        "********" in lines["HUB_SHOPIFY_CLIENT_SECRET"]
        and "(set)" in lines["HUB_SHOPIFY_CLIENT_SECRET"]
    )
    assert "postgresql://hub:********@db.internal:5432/hub" in lines["DATABASE_URL"]
    assert "false" in lines["HUB_SANDBOX"].lower()
    assert "(default)" in lines["HUB_PORT"]


# --- keys across hosts -------------------------------------------------------------------------


def host(data: Path, database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings of a host with its own data dir (and generated key) on a shared database."""
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{database}")
    reset_caches()


def store_secret() -> None:
    with session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name="Shared",
            shop_domain="shared.myshopify.com",
        )  # fmt: skip
        save_credential(
            session=session,
            integration_id=integration.id,
            credential=StoredCredential("access_token", "shpat_shared", []),
        )


async def test_a_second_host_with_its_own_local1_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "shared.db"
    host(tmp_path / "host-a", database, monkeypatch)
    migrations.upgrade_head()
    store_secret()
    with session_scope() as session:
        ensure_keys_match(session=session, vault=get_vault())  # host A starts
    first = get_vault().fingerprints["local1"]

    host(tmp_path / "host-b", database, monkeypatch)  # generates another "local1"
    second = get_vault().fingerprints["local1"]
    assert second != first
    with pytest.raises(KeyMismatchError, match="share the same keys: copy HUB_ENCRYPTION_KEYS"):
        async with hub_lifespan():
            pass
    env = {"HUB_DATA_DIR": str(tmp_path / "host-b"), "HUB_DATABASE_URL": f"sqlite:///{database}"}
    status = hub("keys", "status", env=env, cwd=tmp_path)
    assert status.returncode == 1
    assert "MISMATCH" in status.stdout and f"fingerprint {first}" in status.stderr
    served = hub("serve", env=env, cwd=tmp_path)
    assert served.returncode == 2 and f"(fingerprint {second}) is not the key" in served.stderr

    # Sharing host A's key is the fix.
    monkeypatch.setenv("HUB_ENCRYPTION_KEYS", (tmp_path / "host-a/secret.key").read_text().strip())
    reset_caches()
    async with hub_lifespan():
        pass
    shared = {**env, "HUB_ENCRYPTION_KEYS": os.environ["HUB_ENCRYPTION_KEYS"]}
    status = hub("keys", "status", env=shared, cwd=tmp_path)
    assert status.returncode == 0 and "MISMATCH" not in status.stdout


def test_credentials_from_before_fingerprints_keep_working_and_vouch_for_their_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "shared.db"
    host(tmp_path / "host-a", database, monkeypatch)
    migrations.upgrade_head()
    store_secret()
    with session_scope() as session:  # an upgraded database: no fingerprint recorded yet
        session.exec(delete(EncryptionKey))  # type: ignore[call-overload]

    # The wrong host starting first after the upgrade does not register its key.
    host(tmp_path / "host-b", database, monkeypatch)
    with (
        pytest.raises(KeyMismatchError, match="credentials that do not decrypt"),
        session_scope() as session,
    ):
        ensure_keys_match(session=session, vault=get_vault())

    host(tmp_path / "host-a", database, monkeypatch)
    with session_scope() as session:
        ensure_keys_match(session=session, vault=get_vault())
        [row] = session.exec(sa.select(EncryptionKey)).scalars().all()  # type: ignore[call-overload]
        assert (row.key_id, row.fingerprint) == ("local1", get_vault().fingerprints["local1"])
        [integration_id] = session.exec(sa.text("SELECT integration_id FROM credentials")).scalars()  # type: ignore[call-overload]
    with session_scope() as session:
        import uuid

        credential = load_credential(
            session=session, integration_id=uuid.UUID(str(integration_id)), kind="access_token"
        )
        assert credential is not None and credential.secret == "shpat_shared"


def test_a_fingerprint_names_the_key_without_revealing_it() -> None:
    material = os.urandom(32)
    fingerprint = key_fingerprint(material)
    assert len(fingerprint) == 16 and fingerprint == key_fingerprint(material)
    assert fingerprint != key_fingerprint(os.urandom(32))
    assert fingerprint not in material.hex()
