"""Webhook events the hub stored but did not apply are applied later, exactly once.

The route stores an event, answers 200, and applies it in a background task. A process that
dies in between leaves the event ``received``; the recovery sweep of every hub process applies
it. Several sweeps (threads, processes) racing for the same events apply each once, a live
attempt is never taken over, and an event that keeps failing ends ``failed`` with the reason.

This file is also the child process of the cross-process race:
``python -m tests.test_webhook_recovery START_AT``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from connectors.errors import TransientError
from dashboard.db import session_scope
from dashboard.models import AuditLog, WebhookEvent
from dashboard.services import shopify_webhooks
from dashboard.services.integrations import create_integration
from dashboard.services.sync import worker_id
from tests.test_crash_recovery import child_env, dead_worker_id

SHOP = "recovery.myshopify.com"
DATA_REQUEST = "compliance.customers/data_request"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> str:
    """The hub database on a SQLite file, then on PostgreSQL (skipped when not reachable)."""
    request.getfixturevalue("pg_hub_db" if request.param == "postgres" else "hub_db")
    with session_scope() as s:
        create_integration(session=s, platform="shopify", display_name="Recovery", shop_domain=SHOP)
    return str(request.param)


async def stored(topic: str = "customers/data_request", **payload: object) -> uuid.UUID:
    """An event as the route stores it, whose process then died: never applied."""
    body = payload or {
        "shop_id": 548380009,
        "shop_domain": SHOP,
        "customer": {"id": 7, "email": None, "phone": None},
        "orders_requested": [1],
        "data_request": {"id": 9001},
    }
    event_id = await shopify_webhooks.persist(
        webhook_id=str(uuid.uuid4()), topic=topic, shop=SHOP, body=json.dumps(body).encode()
    )
    assert event_id is not None
    return event_id


def age(*event_ids: uuid.UUID, by: timedelta = timedelta(minutes=1), **values: object) -> None:
    """Move events' reception back in time (past the grace period), and set other columns."""
    with session_scope() as s:
        s.execute(
            sa.update(WebhookEvent)
            .where(col(WebhookEvent.id).in_(event_ids))
            .values(received_at=datetime.now(UTC) - by, **values)
        )


def event(event_id: uuid.UUID) -> WebhookEvent:
    with session_scope() as s:
        row = s.get(WebhookEvent, event_id)
        assert row is not None
        return row


def data_requests() -> list[str]:
    """The webhook ids of the data requests applied (each application writes one entry)."""
    with session_scope() as s:
        entries = s.exec(select(AuditLog).where(AuditLog.action == DATA_REQUEST)).all()
        return [entry.context["webhook_id"] for entry in entries]


async def test_an_event_left_received_by_a_dead_process_is_applied_once_by_racing_sweeps(
    any_db: str,
) -> None:
    event_id = await stored()
    age(event_id)
    # Two sweeps (their database work on two threads) and the route's own late task race.
    swept_a, swept_b, _ = await asyncio.gather(
        shopify_webhooks.recover_events(),
        shopify_webhooks.recover_events(),
        shopify_webhooks.process(event_id),
    )
    row = event(event_id)
    assert (row.status, row.attempts, row.worker, row.error) == ("processed", 1, None, None)
    assert data_requests() == [row.webhook_id]  # applied once, by whichever claimed it
    assert swept_a + swept_b <= 1
    assert await shopify_webhooks.recover_events() == 0


async def test_sweeps_in_three_processes_apply_each_event_once(any_db: str) -> None:
    event_ids = [await stored() for _ in range(30)]
    age(*event_ids)
    start_at = time.time() + 4  # the children import the hub first, then all sweep at once
    command = [sys.executable, "-m", "tests.test_webhook_recovery", str(start_at)]
    children = [
        subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    here = await shopify_webhooks.recover_events()
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    counts = [here] + [int(output.strip().splitlines()[-1]) for output in outputs]
    assert sum(counts) == 30, counts
    with session_scope() as s:
        rows = s.exec(select(WebhookEvent)).all()
    assert {(r.status, r.attempts) for r in rows} == {("processed", 1)}
    applied = data_requests()
    assert sorted(applied) == sorted(r.webhook_id for r in rows)  # each exactly once


async def test_a_backlog_beyond_one_read_is_applied_by_one_sweep_a_batch_per_claim(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook queue that overflowed in a burst leaves thousands of events to the sweep
    (``SWEEP_LIMIT`` read at a time, 40 here): one sweep applies them all, a batch per
    claim, not one event per transaction."""
    monkeypatch.setattr(shopify_webhooks, "SWEEP_LIMIT", 40)
    event_ids = await asyncio.gather(*(stored() for _ in range(100)))
    age(*event_ids)
    claims: list[int] = []
    claim = shopify_webhooks._claim

    def counted(session: Session, seen: dict[uuid.UUID, Any], worker: str) -> Any:
        claims.append(len(seen))
        return claim(session, seen, worker)

    monkeypatch.setattr(shopify_webhooks, "_claim", counted)
    assert await shopify_webhooks.recover_events() == 100
    assert claims == [40, 40, 20]
    with session_scope() as s:
        rows = s.exec(select(WebhookEvent)).all()
    assert {(r.status, r.attempts, r.worker) for r in rows} == {("processed", 1, None)}
    assert sorted(data_requests()) == sorted(r.webhook_id for r in rows)  # each once
    assert await shopify_webhooks.recover_events() == 0


async def test_fresh_events_and_live_attempts_are_left_alone(any_db: str) -> None:
    fresh = await stored()  # within the grace period: its receiving process applies it
    live = await stored()  # being applied right now by a live process on another host
    age(live, worker="other-host:4242:1:abc", attempts=1, attempted_at=datetime.now(UTC))
    assert await shopify_webhooks.recover_events() == 0
    assert (event(fresh).status, event(fresh).attempts) == ("received", 0)
    assert (event(live).status, event(live).worker) == ("received", "other-host:4242:1:abc")
    assert data_requests() == []


async def test_an_attempt_whose_process_died_or_went_silent_is_taken_over(any_db: str) -> None:
    killed, silent = await stored(), await stored()
    age(killed, worker=dead_worker_id(), attempts=1, attempted_at=datetime.now(UTC))
    age(
        silent, worker="other-host:4242:1:abc", attempts=2,
        attempted_at=datetime.now(UTC) - shopify_webhooks.ATTEMPT_EXPIRES - timedelta(seconds=1),
    )  # fmt: skip
    assert await shopify_webhooks.recover_events() == 2
    assert (event(killed).status, event(killed).attempts) == ("processed", 2)
    assert (event(silent).status, event(silent).attempts) == ("processed", 3)
    assert len(data_requests()) == 2


async def test_a_poison_event_ends_failed_with_the_reason_after_bounded_attempts(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    async def poison(row: WebhookEvent) -> bool:
        calls.append(row.id)
        raise RuntimeError("cannot apply this")

    monkeypatch.setattr(shopify_webhooks, "_apply", poison)
    monkeypatch.setattr(shopify_webhooks, "RETRY_AFTER", timedelta(0))
    event_id = await stored()
    await shopify_webhooks.process(event_id)  # the route's attempt
    row = event(event_id)
    assert (row.status, row.attempts, row.worker) == ("received", 1, None)
    assert row.error == "attempt 1 of 5 failed: RuntimeError: cannot apply this; retrying"
    age(event_id)
    sweeps = 0
    while event(event_id).status == "received":
        sweeps += 1
        assert await shopify_webhooks.recover_events() == 1
        assert sweeps < 10, "retried without end"
    row = event(event_id)
    assert (row.status, row.attempts, sweeps, len(calls)) == ("failed", 5, 4, 5)
    assert row.error == "gave up after 5 attempts: RuntimeError: cannot apply this"
    assert row.processed_at is not None
    assert await shopify_webhooks.recover_events() == 0  # never again


async def test_an_event_whose_attempts_keep_killing_their_process_ends_failed(
    any_db: str,
) -> None:
    event_id = await stored()
    age(event_id, worker=dead_worker_id(), attempts=5, attempted_at=datetime.now(UTC))
    assert await shopify_webhooks.recover_events() == 0
    row = event(event_id)
    assert (row.status, row.attempts, row.worker) == ("failed", 5, None)
    assert row.error == (
        "gave up after 5 attempts: the process applying it stopped or went silent each time"
    )
    assert data_requests() == []


async def test_a_platform_outage_is_retried_after_a_delay_and_then_applied(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply = shopify_webhooks._apply
    outage = [TransientError("Shopify answered 503")]

    async def flaky(row: WebhookEvent) -> bool:
        if outage:
            raise outage.pop()
        return await apply(row)

    monkeypatch.setattr(shopify_webhooks, "_apply", flaky)
    event_id = await stored()
    await shopify_webhooks.process(event_id)
    assert event(event_id).error == (
        "attempt 1 of 5 failed: TransientError: Shopify answered 503; retrying"
    )
    age(event_id)
    assert await shopify_webhooks.recover_events() == 0  # waits 30 s after a failed attempt
    age(event_id, attempted_at=datetime.now(UTC) - shopify_webhooks.retry_delay(1))
    assert await shopify_webhooks.recover_events() == 1
    row = event(event_id)
    assert (row.status, row.attempts, row.error) == ("processed", 2, None)


async def test_a_malformed_event_is_rejected_at_once(any_db: str) -> None:
    """A body that is not the topic's shape is never applied, nor retried."""
    event_id = await stored("products/delete", unexpected="no id")
    await shopify_webhooks.process(event_id)
    row = event(event_id)
    assert (row.status, row.attempts) == ("ignored", 1)
    assert row.error == "rejected: the signed body is not a products/delete body: no numeric id"
    assert await shopify_webhooks.recover_events() == 0


async def test_the_hub_applies_stranded_events_at_start_up_and_hands_back_at_shutdown(
    any_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranded = await stored()
    age(stranded)
    async with shopify_webhooks.webhook_lifespan():
        for _ in range(200):
            if event(stranded).status != "received":
                break
            await asyncio.sleep(0.05)
        assert event(stranded).status == "processed"

        # An event being applied when the hub stops: its attempt does not count.
        started = asyncio.Event()

        async def slow(row: WebhookEvent) -> bool:
            started.set()
            await asyncio.sleep(3600)
            return True

        monkeypatch.setattr(shopify_webhooks, "_apply", slow)
        interrupted = await stored()
        shopify_webhooks.process_later(interrupted)
        await asyncio.wait_for(started.wait(), timeout=10)
        assert event(interrupted).worker == worker_id()
    row = event(interrupted)
    assert (row.status, row.attempts, row.worker, row.attempted_at) == ("received", 0, None, None)


if __name__ == "__main__":
    # A sweep in another process, starting at the given instant; prints its attempt count.
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    print(asyncio.run(shopify_webhooks.recover_events()))
