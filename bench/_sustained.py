"""``bench/scale.py --workers N --sustain S``: fair share over time, as the hub runs for real.

Instead of queueing every run at once, the bench process holds the scheduler lease and runs
the hub's own scheduler (APScheduler jobs from the stream configs, jittered intervals, runs
queued for any process) on a compressed clock: a schedule minute lasts ``--minute-seconds``,
so the streams' 15-minute interval comes round every ``15 x minute-seconds`` seconds. The
worker processes claim the runs as in production. After ``S`` seconds it reports, over the
window after the first interval (the start-up burst):

- per-integration throughput: the records of the runs each integration finished in the
  window, over the window; fairness min/max and p5/p95. When the workers cannot keep up
  with what falls due, this is the share each integration got of the capacity;
- how often each stream ran: the gap between consecutive starts of a stream against its
  interval (the issue's "no integration waits more than its interval because of another's
  backlog" holds when the gaps stay near the interval, as long as capacity suffices);
- demand (runs falling due per second) against runs/s served.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import uuid
from argparse import Namespace
from datetime import UTC, datetime, timedelta

from _stats import percentile
from sqlmodel import select

from connectors.base import Connector
from dashboard.db import session_scope
from dashboard.models import SyncRun

INTERVAL_MINUTES = 15  # what bench/scale.py gives every stream


async def sustain(
    args: Namespace, integration_ids: list[uuid.UUID], streams: int, connector: Connector
) -> None:
    """Run the hub's scheduler here for ``args.sustain`` seconds while the workers sync."""
    from dashboard.services import scheduler, sync
    from dashboard.services.sync import SyncEngine

    interval = INTERVAL_MINUTES * args.minute_seconds
    scheduler.MINUTE = args.minute_seconds
    # The scheduler's job queues runs through the engine without claiming them (claim_here
    # is False): this process only decides what is due, as the lease holder does.
    sync.set_engine(SyncEngine(connector_factory=lambda _: connector, max_concurrency=1))
    print(
        f"sustained: the hub's scheduler here, every stream every {interval:.0f} s "
        f"(a schedule minute = {args.minute_seconds} s), for {args.sustain:.0f} s; "
        f"demand {len(integration_ids) * streams / interval:,.1f} runs/s"
    )
    began = datetime.now(UTC)
    async with scheduler.scheduler_lifespan():
        await asyncio.sleep(args.sustain)
    ended = datetime.now(UTC)
    report_sustained(began + timedelta(seconds=interval), ended, interval)


def report_sustained(window_start: datetime, window_end: datetime, interval: float) -> None:
    with session_scope() as session:
        runs = session.exec(select(SyncRun)).all()
    window = (window_end - window_start).total_seconds()
    records: dict[uuid.UUID, int] = {}
    starts: dict[tuple[uuid.UUID, str], list[datetime]] = {}
    served = 0
    for run in runs:
        records.setdefault(run.integration_id, 0)
        if run.started_at is not None:
            starts.setdefault((run.integration_id, run.stream), []).append(run.started_at)
        if run.finished_at is not None and window_start <= run.finished_at <= window_end:
            records[run.integration_id] += run.records_read
            served += 1
    rates = [count / window for count in records.values()]
    print(
        f"window: {window:.0f} s after the first interval; {served} runs finished in it "
        f"= {served / window:,.1f} runs/s"
    )
    if not rates or max(rates) == 0:
        print("no run finished in the window")
        return
    print(
        f"sustained fairness: per-integration throughput min/max = "
        f"{min(rates) / max(rates):.2f} (min {min(rates):,.1f}, median "
        f"{statistics.median(rates):,.1f}, max {max(rates):,.1f} records/s); p5/p95 = "
        f"{percentile(rates, 0.05) / max(percentile(rates, 0.95), 1e-9):.2f}"
    )
    gaps = [
        (later - earlier).total_seconds()
        for moments in starts.values()
        for earlier, later in itertools.pairwise(sorted(moments))
        if window_start <= later <= window_end
    ]
    per_stream = [
        sum(window_start <= moment <= window_end for moment in moments)
        for moments in starts.values()
    ]
    print(
        f"runs a stream started in the window: min {min(per_stream)}, median "
        f"{statistics.median(per_stream):.0f}, max {max(per_stream)} "
        f"(on time: {window / interval:.1f})"
    )
    if gaps:
        late = sum(gap > 2 * interval for gap in gaps)
        print(
            f"a stream's runs started every: median {statistics.median(gaps):.1f} s, p99 "
            f"{percentile(gaps, 0.99):.1f} s, max {max(gaps):.1f} s (interval {interval:.0f} s; "
            f"{late} of {len(gaps)} gaps over twice the interval)"
        )
    waits = [
        (run.started_at - run.created_at).total_seconds()
        for run in runs
        if run.started_at is not None and window_start <= run.started_at <= window_end
    ]
    if waits:
        print(
            f"queue wait in the window: median {statistics.median(waits):.1f} s, p99 "
            f"{percentile(waits, 0.99):.1f} s"
        )
