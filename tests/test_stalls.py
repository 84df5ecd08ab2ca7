"""Stalls detected and named, throttling shown as waiting and ended as documented: the sync
engine against the sandbox over real HTTP, on a fast clock so that minutes take seconds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from connectors.amazon.client import BucketRegistry
from connectors.amazon.connector import AmazonConfig, AmazonConnector
from connectors.amazon.reports import ReportPolling
from connectors.amazon.streams import StreamOptions
from dashboard.db import session_scope
from dashboard.models import RunStatus
from dashboard.services import health, incidents, runs
from dashboard.services.sync import SyncEngine
from tests import test_amazon_sync as amazon
from tests import test_shopify_sync as shopify
from tests.conftest import reset_caches
from tests.sandbox_server import apps, control_headers, running_sandbox


@pytest.fixture
def sandbox() -> Iterator[str]:
    shopify._throttles.clear()
    with running_sandbox(seed=3, time_scale=500) as (base, _app):
        yield base
    shopify._throttles.clear()


def summary(run_id: uuid.UUID) -> dict[str, Any]:
    with session_scope() as s:
        [row] = runs.summaries_of(session=s, run_ids=[run_id])
        return row


async def watch(run_id: uuid.UUID, until: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Poll the run as the Runs page does until its ``live_state`` is ``until``; the rows seen."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        seen.append(summary(run_id))
        if seen[-1]["live_state"] == until:
            return seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"never {until}: last {seen[-1]}")


async def test_a_throttle_storm_shows_waiting_then_fails_after_the_documented_attempts(
    session: Session, sandbox: str
) -> None:
    integration_id = amazon.connect(session, sandbox, orders=30, listings=5, fba_items=5)
    config = AmazonConfig(
        app_id=apps(sandbox).amazon_app_id, client_id=apps(sandbox).amazon_client_id,
        client_secret=apps(sandbox).amazon_client_secret, base_url=f"{sandbox}/amazon",
        options=StreamOptions(polling=ReportPolling(0.02, 0.2, 60)),
    )  # fmt: skip
    buckets = BucketRegistry()
    # The documented policy: retries after 2, 10 and 30 s (shortened), so 4 attempts.
    engine = SyncEngine(
        connector_factory=lambda _: AmazonConnector(config, None, buckets=buckets),
        retry_delays=(0.05, 0.05, 0.05),
    )
    [first] = await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()  # the client learns the sandbox's (fast-clock) rates
    assert summary(first)["status"] == RunStatus.SUCCEEDED.value

    httpx.put(
        f"{sandbox}/_sandbox/faults/amazon/{amazon.SELLER}",
        json={"throttle_rate": 1.0},
        headers=control_headers(sandbox),
    ).raise_for_status()
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="orders")
    seen = await watch(run_id, "waiting")
    waiting = seen[-1]
    assert waiting["waiting_until"] > waiting["progress_at"]  # when the next call goes out
    assert "SP-API" in waiting["waiting_reason"]
    assert waiting["rate"] == 0.0 and waiting["rate_now"] is None  # no stale rate
    assert not waiting["stalled"]  # a known wait is not a stall
    with session_scope() as s:
        [stream] = [
            r for r in health.stream_health(session=s, integration_id=integration_id)
            if r["stream"] == "orders"
        ]  # fmt: skip
        assert stream["health"] == "waiting" and stream["waiting_until"]

    await engine.wait()
    ended = summary(run_id)
    assert ended["status"] == RunStatus.FAILED.value
    assert ended["error"].startswith("gave up after 4 attempts: SP-API ")
    assert "answered 429 (throttled)" in ended["error"]
    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id)]
        [incident] = incidents.list_incidents(session=s)
    assert sum("throttled attempt" in line for line in log) == 4
    assert any(line.startswith("waiting for the rate limit: next call at") for line in log)
    assert log[-1].startswith("run failed: gave up after 4 attempts")
    assert incident["category"] == "rate_limited"
    assert incident["title"].startswith("Amazon kept throttling the hub (429) for 1 stream")


async def test_a_run_without_progress_past_the_stall_limit_is_stalled_with_the_reason(
    session: Session, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SYNC_STALL_MINUTES", "0.005")  # 0.3 s
    reset_caches()
    from sqlmodel import SQLModel

    from dashboard.db import get_engine

    SQLModel.metadata.create_all(get_engine())
    with session_scope() as s:
        integration_id = shopify.connect(s, sandbox, products=30)
    # Every request takes 1,000 platform seconds (2 s here) before Shopify answers.
    httpx.put(
        f"{sandbox}/_sandbox/faults/shopify/{shopify.SHOP}",
        json={"slow_rate": 1.0, "slow_seconds": 1000},
        headers=control_headers(sandbox),
    ).raise_for_status()
    engine = shopify.engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
    stalled = (await watch(run_id, "stalled"))[-1]
    assert stalled["status"] == RunStatus.RUNNING.value
    assert stalled["stall_reason"].startswith("no progress for ")
    assert "limit 0.3 s" in stalled["stall_reason"]
    assert "no rate-limit wait explains it" in stalled["stall_reason"]
    with session_scope() as s:
        [row] = health.integration_health(session=s, ids=[integration_id]).values()
        assert row["health"] == "stalled"
        [incident] = incidents.list_incidents(session=s)
        assert incident["cause"] == "stalled" and incident["streams"] == ["products"]

    httpx.put(
        f"{sandbox}/_sandbox/faults/shopify/{shopify.SHOP}",
        json={},
        headers=control_headers(sandbox),
    ).raise_for_status()
    await engine.wait()
    assert summary(run_id)["status"] == RunStatus.SUCCEEDED.value
    with session_scope() as s:
        assert incidents.list_incidents(session=s) == []  # resolved when it moved / succeeded
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id)]
    assert any(line.startswith("stalled: no progress for ") for line in log)
