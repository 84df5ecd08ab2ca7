from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.settings import (
    SANDBOX_SHOPIFY_CLIENT_ID,
    SettingsError,
    get_settings,
    load_settings,
)


def test_defaults_give_a_working_embedded_hub(hub_env: Path) -> None:
    settings = get_settings()
    assert settings.port == 3000
    assert settings.public_url == "http://localhost:3000"
    assert settings.sqlalchemy_url == f"sqlite:///{hub_env / 'hub.db'}"
    assert settings.sqlalchemy_url.startswith("sqlite:////")  # absolute path
    assert settings.shopify_base_url == "http://localhost:3000/sandbox/shopify"
    assert settings.amazon_base_url == "http://localhost:3000/sandbox/amazon"
    assert settings.shopify_client_id == SANDBOX_SHOPIFY_CLIENT_ID


def test_port_changes_public_url(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PORT", "3100")
    assert load_settings().public_url == "http://localhost:3100"


@pytest.mark.parametrize(
    ("public_url", "origin"),
    [
        ("http://localhost:3100", "http://localhost:3100"),
        ("https://Hub.Example.com:443/hub", "https://hub.example.com"),  # as browsers send it
        ("https://hub.example.com:8443", "https://hub.example.com:8443"),
        ("https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443"),
    ],
)
def test_the_public_origin_is_the_one_a_browser_sends(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch, public_url: str, origin: str
) -> None:
    """The websocket, sign-in and the pages' address check compare this with a browser's
    Origin, which never names a default port."""
    monkeypatch.setenv("HUB_PUBLIC_URL", public_url)
    monkeypatch.setenv("HUB_SANDBOX", "false")
    assert load_settings().public_origin == origin


def test_invalid_value_names_the_variable(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="HUB_PORT"):
        load_settings()


def test_unsupported_database_is_refused(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/hub")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings()


def test_postgres_url_uses_psycopg(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/hub")
    assert load_settings().sqlalchemy_url == "postgresql+psycopg://u@db:5432/hub"


def test_plain_http_public_url_refused_in_production(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_ENV", "prod")
    monkeypatch.setenv("HUB_SANDBOX", "0")
    monkeypatch.setenv("HUB_PUBLIC_URL", "http://hub.example.com")
    with pytest.raises(SettingsError, match="HUB_PUBLIC_URL"):
        load_settings()


def test_real_platforms_when_sandbox_off(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SANDBOX", "false")
    settings = load_settings()
    assert settings.shopify_base_url is None
    assert settings.shopify_client_id is None
