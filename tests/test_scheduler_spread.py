"""Streams added by the hundred are released a few a second, so that they do not come due
together again every interval; one integration's streams still run within seconds. (The
runs missed during a takeover: tests/test_scheduler.py.)"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from dashboard.models import StreamConfig
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
