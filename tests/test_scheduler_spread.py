"""Runs falling due together are spread out, so that they do not come due together again
every interval: streams added by the hundred, and the runs missed while no process held the
scheduler lease. One integration's streams still run within seconds."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from dashboard.models import StreamConfig
from dashboard.services import scheduler as scheduler_module
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.scheduler import RELEASE_PER_SECOND, HubScheduler, job_id

INTERVAL = timedelta(minutes=5)
STEP = timedelta(seconds=1 / RELEASE_PER_SECOND)


def connected_integrations(session: Session, count: int, prefix: str) -> list[uuid.UUID]:
    ids = []
    for n in range(count):
        integration = create_integration(
            session=session, platform="shopify", display_name=f"{prefix} {n}",
            shop_domain=f"{prefix}-{n}.myshopify.com", streams={"products": 5, "orders": 5},
        )  # fmt: skip
        mark_connected(session=session, integration_id=integration.id)
        ids.append(integration.id)
    session.commit()
    return ids


def first_runs(hub: HubScheduler, ids: list[uuid.UUID]) -> list[datetime]:
    assert hub.scheduler is not None
    jobs = [hub.scheduler.get_job(job_id(i, s)) for i in ids for s in ("products", "orders")]
    return sorted(job.next_run_time for job in jobs)


async def test_streams_added_by_the_hundred_are_released_a_few_per_second(
    session: Session,
) -> None:
    ids = connected_integrations(session, 100, "bulk")
    hub = HubScheduler(holder="host-a:1")
    await hub._start_scheduler()
    try:
        assert hub.scheduler is not None
        hub.scheduler.pause()
        began = datetime.now(UTC)
        await hub.reconcile()
        times = first_runs(hub, ids)
        assert times[0] - began < timedelta(seconds=6)  # the first still runs soon
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= STEP - timedelta(milliseconds=1)
        # 200 streams at 20 a second: released over 10 s, well within their interval.
        assert times[-1] - times[0] >= (len(times) - 1) * STEP - timedelta(milliseconds=50)
        assert times[-1] - began < INTERVAL
        # What the Status tab shows: every stream's next run, stored.
        stored = session.exec(select(StreamConfig.next_run_at)).all()
        assert len(stored) == 200 and all(moment is not None for moment in stored)

        # One integration connected meanwhile: its streams run within seconds, not behind
        # the released herd.
        [lone] = connected_integrations(session, 1, "lone")
        asked = datetime.now(UTC)
        await hub.reconcile()
        assert all(moment - asked < timedelta(seconds=6) for moment in first_runs(hub, [lone]))
    finally:
        hub._stop_scheduler()


async def test_runs_missed_during_an_outage_are_released_longest_overdue_first(
    session: Session,
) -> None:
    ids = connected_integrations(session, 50, "shop")
    first = HubScheduler(holder="host-a:1")
    await first._start_scheduler()
    await first.reconcile()
    assert first.scheduler is not None
    due = {job.id: job.next_run_time for job in first.scheduler.get_jobs()}
    first._stop_scheduler()

    second = HubScheduler(holder="host-b:2")
    await second._start_scheduler()
    try:
        scheduler = second.scheduler
        assert scheduler is not None
        scheduler.pause()
        later = max(due.values()) + 3 * INTERVAL  # nobody held the lease for 15 minutes
        missed = scheduler_module._rebase_missed(scheduler, now=later)
        assert sorted(missed) == sorted(due)
        assert missed == sorted(due, key=lambda jid: due[jid])  # longest overdue first
        released = [scheduler.get_job(jid).next_run_time for jid in missed]
        assert released[0] == later  # the first fires at once
        gaps = [b - a for a, b in itertools.pairwise(released)]
        assert min(gaps) >= STEP - timedelta(milliseconds=1)
        assert released[-1] - later < INTERVAL
        # Each one's next run is then a full interval after it, not on the old grid.
        job = scheduler.get_job(missed[-1])
        assert job.trigger.get_next_fire_time(released[-1], later) - released[-1] >= INTERVAL
        assert scheduler_module._rebase_missed(scheduler, now=later) == []  # fired once
        assert len(ids) * 2 == len(missed)
    finally:
        second._stop_scheduler()
