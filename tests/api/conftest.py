"""The Hub API under test: the hub's real Starlette app (``build_api``) over httpx's ASGI
transport, a connected integration, and API keys made through the same service as the UI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable

import httpx
import pytest
from starlette.applications import Starlette

from dashboard.api import build_api
from dashboard.db import session_scope
from dashboard.services.api_keys import SCOPES, create_api_key
from dashboard.services.integrations import create_integration, mark_connected

MakeKey = Callable[..., str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> str:
    """The hub on a SQLite file, then on PostgreSQL (skipped when not reachable)."""
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    return str(request.param)


def new_integration(name: str = "Acme", shop: str = "acme.myshopify.com") -> uuid.UUID:
    with session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name=name, shop_domain=shop,
            streams={"orders": 5},
        )  # fmt: skip
        mark_connected(session=session, integration_id=integration.id)
        return integration.id


@pytest.fixture
def make_key() -> MakeKey:
    def make(
        scopes: Iterable[str] = SCOPES,
        integration_ids: Iterable[uuid.UUID] = (),
        rate_limit_per_minute: int = 100_000,
    ) -> str:
        with session_scope() as session:
            _, key = create_api_key(
                session=session, name="erp", scopes=scopes, actor="admin@example.com",
                integration_ids=integration_ids, rate_limit_per_minute=rate_limit_per_minute,
            )  # fmt: skip
        return key

    return make


@pytest.fixture
async def hub() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the hub's whole HTTP app (Reflex's part replaced by an empty app)."""
    transport = httpx.ASGITransport(app=build_api(Starlette()))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
