"""What the Shopify client's throttling tests share: the shop's endpoint and token, a fake
clock standing in for time.monotonic and asyncio.sleep (the ``clock`` fixture), and GraphQL
answers shaped like Shopify's, with their ``extensions.cost``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from connectors.shopify import client as client_module
from connectors.shopify.queries import API_VERSION

BASE = "https://acme.myshopify.com"
ENDPOINT = f"{BASE}/admin/api/{API_VERSION}/graphql.json"
TOKEN = "shpat_test_token_never_logged"
PAGE = {"products": {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}}
THROTTLED = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]


class FakeClock:
    """Stands in for time.monotonic and asyncio.sleep: sleeping advances it instantly."""

    def __init__(self) -> None:
        self.now = 5_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float, *_: Any) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await REAL_SLEEP(0)


REAL_SLEEP = asyncio.sleep


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(client_module, "time", SimpleNamespace(monotonic=fake.monotonic))
    # asyncio.sleep is looked up at call time by the client's bucket wait and by tenacity's
    # retry back-off alike, so one patch covers both.
    monkeypatch.setattr(asyncio, "sleep", fake.sleep)
    monkeypatch.setattr(client_module, "_throttles", {})
    yield fake


def answer(
    data: dict[str, Any] | None = None,
    *,
    available: float,
    maximum: float = 2000.0,
    restore: float = 100.0,
    requested: float = 50.0,
    actual: float | None = 50.0,
    errors_: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    """A GraphQL response shaped like Shopify's, with its ``extensions.cost``."""
    body: dict[str, Any] = {
        "extensions": {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": maximum,
                    "currentlyAvailable": available,
                    "restoreRate": restore,
                },
            }
        }
    }
    if data is not None:
        body["data"] = data
    if errors_:
        body["errors"] = errors_
    return httpx.Response(200, json=body)
