"""The Settings page's app-credentials panel says which settings are present, and whose."""

from __future__ import annotations

import json

import pytest

from dashboard.pages.settings import _credential_presence
from tests.conftest import reset_caches


def states(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    return {row["name"]: row["state"] for row in _credential_presence()}


def test_the_sandbox_apps_credentials_are_named_so(hub_env, monkeypatch) -> None:
    shown = states(monkeypatch)
    assert set(shown.values()) == {"set (sandbox app)"}


def test_own_credentials_are_set_and_absent_ones_missing_and_no_secret_is_shown(
    hub_env, monkeypatch
) -> None:
    shown = states(
        monkeypatch, HUB_SANDBOX="false", HUB_SHOPIFY_CLIENT_ID="my-app",
        HUB_SHOPIFY_CLIENT_SECRET="shpss_real_secret",
    )  # fmt: skip
    assert shown["Shopify client id"] == shown["Shopify client secret"] == "set"
    assert shown["Amazon LWA client secret"] == "missing"
    assert "shpss_real_secret" not in json.dumps(_credential_presence())
