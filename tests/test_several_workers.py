"""Several backend workers (REDIS_URL): the sandbox mounted inside the hub would be one per
worker, so the hub refuses that and points at one standalone sandbox instead. The scaled
configuration end to end (PostgreSQL, Redis, 3 workers, browser) is tests/browser/test_scaled.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel, select
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.amazon.client import BUCKETS
from connectors.shopify.client import _throttles
from dashboard.api import build_api
from dashboard.db import get_engine, session_scope
from dashboard.models import Integration, Product
from dashboard.services import sync
from dashboard.services.demo import seed_demo_integrations
from dashboard.settings import SANDBOX_SHOPIFY_CLIENT_ID, SettingsError, load_settings
from tests.conftest import reset_caches
from tests.sandbox_server import free_port, running_sandbox, serving

STANDALONE = "http://127.0.0.1:8900"


def point_at(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    monkeypatch.setenv("HUB_SHOPIFY_BASE_URL", f"{base}/shopify")
    monkeypatch.setenv("HUB_AMAZON_BASE_URL", f"{base}/amazon")


def test_embedded_sandbox_with_redis_is_refused_naming_what_to_do(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRANIAN_WORKERS", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert "REDIS_URL makes the hub run several backend workers" in message
    for remedy in ("hub sandbox serve", "HUB_SHOPIFY_BASE_URL=", "HUB_AMAZON_BASE_URL=",
                   "GRANIAN_WORKERS=1", "HUB_SANDBOX=false"):  # fmt: skip
        assert remedy in message


def test_worker_count_decides_not_redis_alone(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("GRANIAN_WORKERS", "1")
    assert load_settings().sandbox_mounted  # Redis state, one worker: the mounted one is fine
    monkeypatch.setenv("GRANIAN_WORKERS", "3")
    with pytest.raises(SettingsError, match="GRANIAN_WORKERS=3 makes the hub run several"):
        load_settings()


def test_several_workers_without_redis_are_refused(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SANDBOX", "false")
    monkeypatch.setenv("GRANIAN_WORKERS", "3")
    with pytest.raises(SettingsError, match="GRANIAN_WORKERS=3 without REDIS_URL: each backend"):
        load_settings()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load_settings().redis_url


def test_standalone_sandbox_serves_several_workers(
    hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.delenv("GRANIAN_WORKERS", raising=False)
    point_at(monkeypatch, STANDALONE)
    settings = load_settings()
    assert not settings.sandbox_mounted
    assert settings.shopify_base_url == f"{STANDALONE}/shopify"
    assert settings.shopify_client_id == SANDBOX_SHOPIFY_CLIENT_ID  # still the sandbox's app
    reset_caches()
    mounts = [r.path for r in build_api(Starlette()).routes if isinstance(r, Mount)]
    # Reflex and the Hub API only: no sandbox of its own in each worker.
    assert sorted(mounts) == ["", "/api/v1"]

    monkeypatch.setenv("HUB_SANDBOX", "false")  # or as if it were a real platform
    monkeypatch.delenv("HUB_SHOPIFY_BASE_URL")
    assert not load_settings().sandbox_mounted


async def test_demo_seeds_the_standalone_sandbox(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _throttles.clear()
    BUCKETS.buckets.clear()
    port = free_port()
    # `hub sandbox serve --demo`: the demo seller exists only there; it registers the hub's
    # callbacks, the only redirect URIs its consent pages send codes to
    callbacks = {
        p: [f"http://127.0.0.1:{port}/api/oauth/{p}/callback"] for p in ("shopify", "amazon")
    }
    with running_sandbox(seed=5, time_scale=50, demo=True, redirect_uris=callbacks) as (base, _):
        monkeypatch.setenv("HUB_PUBLIC_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("HUB_SANDBOX_DEMO", "1")
        point_at(monkeypatch, base)
        reset_caches()
        SQLModel.metadata.create_all(get_engine())
        sync.set_engine(sync.SyncEngine(retry_delays=(0.05,)))
        try:
            with serving(build_api(Starlette()), port):  # the hub's webhook routes
                assert await seed_demo_integrations() == 3
                await sync.get_engine().wait()
        finally:
            sync.set_engine(None)
    with session_scope() as s:
        integrations = s.exec(select(Integration)).all()
        assert len(integrations) == 3
        assert {i.status for i in integrations} <= {"connected", "syncing"}
        assert s.exec(select(Product)).first() is not None  # synced from the standalone sandbox
