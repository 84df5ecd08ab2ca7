"""A run that ends hands its slot on in its last transaction
(``sync_claims.finish_and_start_next``): the runs one due batch queued for an integration run
back to back, runs queued later take their turn in the fair order, and a process that stops
meanwhile leaves nothing running in its name."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from dashboard.db import session_scope
from dashboard.models import SyncRun
from dashboard.services import sync
from tests.claims_helpers import queue_shop, set_queued_at, shop_of
from tests.fake_connector import FakeConnector

TWO_STREAMS = {"products": 15, "customers": 15}


def one_slot_engine() -> sync.SyncEngine:
    engine = sync.SyncEngine(
        max_concurrency=1, connector_factory=lambda _: FakeConnector(total=20, page_size=10)
    )
    engine.worker = "host-a:1"
    return engine


def runs_in_start_order(run_ids: list[uuid.UUID]) -> list[SyncRun]:
    with session_scope() as s:
        runs = s.exec(select(SyncRun).where(col(SyncRun.id).in_(run_ids))).all()
    return sorted(runs, key=lambda run: (run.started_at is None, run.started_at))


async def test_an_integration_s_runs_queued_together_run_back_to_back(any_db: str) -> None:
    """Two shops queued half a second apart, their streams interleaved in the queue (as the
    scheduler queues what fell due at one moment): with one slot, each shop's runs follow
    each other, the first shop's before the second's, every run in the slot of the one
    before it."""
    queued_at = datetime.now(UTC) - timedelta(minutes=10)
    first = queue_shop("First", TWO_STREAMS, queued_at=queued_at)
    second = queue_shop("Second", TWO_STREAMS, queued_at=queued_at + timedelta(seconds=0.5))
    engine = one_slot_engine()

    assert await engine.claim() == first[:1]  # the oldest
    await engine.wait()

    runs = runs_in_start_order(first + second)
    assert shop_of([run.id for run in runs]) == ["First", "First", "Second", "Second"]
    assert {(run.status, run.worker) for run in runs} == {("succeeded", "host-a:1")}
    for before, after in itertools.pairwise(runs):
        assert after.started_at is not None and before.finished_at is not None
        assert after.started_at >= before.finished_at  # one slot: one run at a time


async def test_a_run_queued_after_the_ending_one_started_waits_its_turn(any_db: str) -> None:
    """A shop's second stream queued after its first run started (a webhook, say) does not
    jump the queue: another shop's run queued before it goes first."""
    now = datetime.now(UTC)
    first = queue_shop("First", TWO_STREAMS, queued_at=now - timedelta(minutes=10))
    [second] = queue_shop("Second", {"orders": 15}, queued_at=now - timedelta(minutes=10))
    # Queued after the first shop's first run will have started: the other shop's earlier.
    with session_scope() as s:
        set_queued_at(s, second, now + timedelta(hours=1))
        set_queued_at(s, first[1], now + timedelta(hours=2))
    engine = one_slot_engine()

    assert await engine.claim() == first[:1]
    await engine.wait()

    runs = runs_in_start_order([*first, second])
    assert shop_of([run.id for run in runs]) == ["First", "Second", "First"]
    assert {run.status for run in runs} == {"succeeded"}


async def test_a_run_handed_on_while_its_process_stops_resumes_elsewhere(
    hub_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process begins to stop while a run's end starts the next: that run is not left
    ``running`` in the name of a process that will never run it; it is interrupted and its
    stream queued again, without an owner, for any other process."""
    first = queue_shop("First", TWO_STREAMS, queued_at=datetime.now(UTC) - timedelta(minutes=1))
    engine = one_slot_engine()
    hand_on = sync.finish_and_start_next

    def stop_meanwhile(*args: Any, **kwargs: Any) -> Any:
        started = hand_on(*args, **kwargs)
        engine._stopping = True  # stop() began while this transaction ran
        return started

    monkeypatch.setattr(sync, "finish_and_start_next", stop_meanwhile)
    assert await engine.claim() == first[:1]
    await engine.wait()

    ended, handed_on = runs_in_start_order(first)
    assert ended.status == "succeeded"
    assert handed_on.status == "interrupted"
    assert handed_on.error == "the hub stopped; the next start resumes this stream"
    with session_scope() as s:
        active = s.exec(
            select(SyncRun).where(
                SyncRun.stream == handed_on.stream, col(SyncRun.status).in_(["queued", "running"])
            )
        ).all()
    assert [(run.status, run.worker, run.trigger) for run in active] == [("queued", None, "retry")]
