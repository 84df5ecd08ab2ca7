from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dashboard import migrations
from dashboard.api import build_api


@pytest.fixture(autouse=True)
def no_sandbox(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # These probes must answer whatever else is mounted; the sandbox has its own tests.
    monkeypatch.setenv("HUB_SANDBOX", "0")
    from tests.conftest import reset_caches

    reset_caches()
    yield


def _app() -> Starlette:
    async def reflex_stub(request):  # stands in for Reflex's ASGI app behind our routes
        return PlainTextResponse("reflex")

    return build_api(Starlette(routes=[Route("/{path:path}", reflex_stub)]))


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.get(path)


async def test_health_answers_without_database(hub_env: Path) -> None:
    response = await _get("/api/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_ready_needs_migrations_at_head(hub_env: Path) -> None:
    before = await _get("/api/ready")
    assert before.status_code == 503
    assert before.json()["hint"] == "run `hub migrate`"
    migrations.upgrade_head()
    after = await _get("/api/ready")
    assert after.status_code == 200
    assert after.json()["at_head"] is True


async def test_other_paths_reach_reflex(hub_env: Path) -> None:
    assert (await _get("/integrations")).text == "reflex"
