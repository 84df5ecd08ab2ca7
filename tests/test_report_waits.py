"""While Amazon prepares a report, a run waits; it is not stalled (issue 13).

The listings stream requests a report and asks for it until it is DONE: minutes in which no
page arrives. The run shows "waiting for Amazon to prepare the report (checked 10:14)", and
its stall clock runs from the report's last change of status (IN_QUEUE -> IN_PROGRESS ->
DONE), so only a report stuck in one status past the stream's stall limit makes the run
stalled, in words that say so. Against the sandbox over real HTTP, on a clock at which its
report takes 2 s in the queue and 3 s in progress.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from connectors.amazon.client import BucketRegistry
from connectors.amazon.connector import AmazonConfig, AmazonConnector
from connectors.amazon.reports import ReportPolling
from connectors.amazon.streams import StreamOptions
from dashboard.db import get_engine, session_scope
from dashboard.models import Integration, RunStatus
from dashboard.services import health, incidents, runs
from dashboard.services.sync import SyncEngine
from tests import test_amazon_sync as amazon
from tests.conftest import reset_caches
from tests.sandbox_server import apps, running_sandbox

HHMM = r"\d\d:\d\d"


@pytest.fixture
def sandbox() -> Iterator[str]:
    # Time scale 10: a report spends 2 s IN_QUEUE, then 3 s IN_PROGRESS (sandbox timings).
    with running_sandbox(seed=5, time_scale=10) as (base, _app):
        yield base


@pytest.fixture
def slow_sandbox() -> Iterator[str]:
    # Time scale 3: a report spends 6.7 s IN_QUEUE, room for a stall limit longer than what
    # comes before it (a token, createReport) on a busy machine, and shorter than the queue.
    with running_sandbox(seed=5, time_scale=3) as (base, _app):
        yield base


def seller(base: str, stall_minutes: str, monkeypatch: pytest.MonkeyPatch) -> uuid.UUID:
    monkeypatch.setenv("HUB_SYNC_STALL_MINUTES", stall_minutes)
    reset_caches()
    SQLModel.metadata.create_all(get_engine())
    with session_scope() as s:
        integration_id = amazon.connect(s, base, orders=1, listings=40, fba_items=1)
        s.execute(  # one marketplace: one report
            sa.update(Integration)
            .where(Integration.id == integration_id)  # type: ignore[arg-type]
            .values(marketplaces=amazon.MARKETPLACES[:1])
        )
    return integration_id


def engine(base: str) -> SyncEngine:
    config = AmazonConfig(
        app_id=apps(base).amazon_app_id, client_id=apps(base).amazon_client_id,
        client_secret=apps(base).amazon_client_secret, base_url=f"{base}/amazon",
        options=StreamOptions(polling=ReportPolling(0.1, 0.3, 120), report_reuse_minutes=0),
    )  # fmt: skip
    buckets = BucketRegistry()
    return SyncEngine(connector_factory=lambda _: AmazonConnector(config, None, buckets=buckets))


def summary(run_id: uuid.UUID) -> dict[str, Any]:
    with session_scope() as s:
        [row] = runs.summaries_of(session=s, run_ids=[run_id])
        return row


async def follow(engine: SyncEngine, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The run as the Runs page polls it, until it ends."""
    seen = []
    task = asyncio.create_task(engine.wait([run_id]))
    while not task.done():
        seen.append(summary(run_id))
        await asyncio.sleep(0.05)
    await task
    return seen


async def test_a_run_waiting_for_amazons_report_shows_waiting_not_stalled(
    session: Session, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4.2 s: longer than each status lasts (2 s, 3 s), shorter than the 5 s without a page.
    integration_id = seller(sandbox, "0.07", monkeypatch)
    sync = engine(sandbox)
    [run_id] = await sync.request_sync(integration_id=integration_id, stream="listings")
    task = asyncio.create_task(sync.wait([run_id]))
    seen: list[dict[str, Any]] = []
    stream_words: set[str] = set()
    while not task.done():
        seen.append(summary(run_id))
        with session_scope() as s:
            [listings] = [
                r for r in health.stream_health(session=s, integration_id=integration_id)
                if r["stream"] == "listings"
            ]  # fmt: skip
        stream_words.add(listings["cause_words"])
        await asyncio.sleep(0.05)
    await task

    waiting = [row for row in seen if row["live_state"] == "waiting"]
    assert waiting, "the run never showed that it waits for the report"
    assert {row["waiting_for"] for row in waiting} == {"report"}
    assert all(row["waiting_checked_at"] for row in waiting)  # when the hub last asked
    assert {row["waiting_reason"] for row in waiting} >= {
        "Amazon is preparing the listings report (IN_QUEUE)",
        "Amazon is preparing the listings report (IN_PROGRESS)",
    }
    assert not any(row["stalled"] for row in seen)
    assert any(
        re.fullmatch(rf"waiting for Amazon to prepare the report \(checked {HHMM}\)", words)
        for words in stream_words
    )
    assert summary(run_id)["status"] == RunStatus.SUCCEEDED.value
    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id)]
        assert incidents.list_incidents(session=s) == []
    changes = [line for line in log if line.endswith(" on Amazon")]
    assert changes == [
        "The listings report is IN_QUEUE on Amazon",
        "The listings report is IN_PROGRESS on Amazon",
        "The listings report is DONE on Amazon",
    ]  # each change once, not each time the hub asked


async def test_a_report_stuck_in_one_status_past_the_stall_limit_is_stalled_in_words(
    session: Session, slow_sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = slow_sandbox
    integration_id = seller(sandbox, "0.06", monkeypatch)  # 3.6 s: less than the queue's 6.7 s
    sync = engine(sandbox)
    [run_id] = await sync.request_sync(integration_id=integration_id, stream="listings")
    seen = await follow(sync, run_id)

    stalled = [row for row in seen if row["stalled"]]
    assert stalled, "a report queued past the stall limit was not called stalled"
    assert re.fullmatch(
        r"Amazon kept the listings report IN_QUEUE for \d+\.\d s \(stall limit 3\.6 s\); "
        r"the hub keeps asking and reads it once it is ready",
        stalled[0]["stall_reason"],
    )
    # It moved on and finished: the stall and its incident are over.
    assert summary(run_id)["status"] == RunStatus.SUCCEEDED.value
    with session_scope() as s:
        assert incidents.list_incidents(session=s) == []
        [resolved] = incidents.list_incidents(session=s, status="resolved")
    assert resolved["cause"] == "stalled" and resolved["streams"] == ["listings"]
