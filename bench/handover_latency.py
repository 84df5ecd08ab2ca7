"""How soon a hub process starts a run that `hub sync` hands over to it.

`hub sync` without --wait, with a hub running, queues each run without an owner; every hub
process looks for such runs every HANDOVER_EVERY seconds (one query off the status index)
and the first to claim one executes it. This runs a hub process (a child, crash recovery and
handover as in production, a fast fake connector) beside N integrations and a run history,
hands it one run at a time at random instants, and prints the time from queued to started
(both stamped by the database rows) and the cost of the hub's look.

    python bench/handover_latency.py [--runs 30] [--history 50000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(integrations: int, history: int) -> list[uuid.UUID]:
    import sqlalchemy as sa

    from dashboard import db
    from dashboard.models import SchedulerLease, SyncRun
    from dashboard.services.integrations import create_integration, mark_connected

    ids = []
    with db.session_scope() as session:
        for index in range(integrations):
            integration = create_integration(
                session=session, platform="shopify", display_name=f"Store {index}",
                shop_domain=f"store-{index}.myshopify.com", streams={"products": 60},
            )  # fmt: skip
            mark_connected(session=session, integration_id=integration.id)
            ids.append(integration.id)
        now = datetime.now(UTC)
        if history:
            session.execute(
                sa.insert(SyncRun),
                [
                    {
                        "id": uuid.uuid4(),
                        "integration_id": ids[index % integrations],
                        "stream": "products",
                        "status": "succeeded",
                        "created_at": now - timedelta(seconds=index * 3),
                    }
                    for index in range(history)
                ],
            )
        # `hub sync` hands runs over only when a hub holds the scheduler lease.
        session.add(
            SchedulerLease(
                name="scheduler", holder="bench-hub", expires_at=now + timedelta(hours=1)
            )
        )
    return ids


def hub() -> None:
    """The hub process: the engine's lifespan (recovery, handover) until stdin closes."""
    from dashboard.services import sync
    from tests.fake_connector import FakeConnector

    async def main() -> None:
        sync.set_engine(sync.SyncEngine(connector_factory=lambda _: FakeConnector(total=20)))
        async with sync.engine_lifespan():
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)

    asyncio.run(main())


async def hand_over(ids: list[uuid.UUID]) -> list[float]:
    from dashboard.db import in_session
    from dashboard.models import SyncRun
    from dashboard.services import sync

    cli = sync.SyncEngine()
    latencies = []
    for integration_id in ids:
        await asyncio.sleep(random.uniform(0, 2 * sync.HANDOVER_EVERY))  # any phase of the look
        [run_id] = await cli.request_sync(integration_id=integration_id, run_here=False)
        while True:
            run = await in_session(lambda s, run_id=run_id: s.get(SyncRun, run_id))
            if run is not None and run.started_at is not None:
                break
            await asyncio.sleep(0.01)
        latencies.append((run.started_at - run.created_at).total_seconds())
    return latencies


def look_cost(repeat: int = 200) -> list[float]:
    from dashboard import db
    from dashboard.services.sync import _unowned_queued

    timings = []
    with db.session_scope() as session:
        for _ in range(repeat):
            started = time.perf_counter()
            _unowned_queued(session)
            timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs handed over, one at a time")
    parser.add_argument("--history", type=int, default=50_000, help="finished runs in the table")
    parser.add_argument("--postgres", help="a database URL to use instead of a SQLite file")
    parser.add_argument("--hub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hub:
        hub()
        return 0

    os.environ["HUB_DATA_DIR"] = tempfile.mkdtemp(prefix="hub-bench-")
    if args.postgres:
        os.environ["DATABASE_URL"] = args.postgres
    from dashboard import db, migrations
    from dashboard.services import sync

    migrations.upgrade_head()
    ids = seed(args.runs, args.history)
    child = subprocess.Popen(
        [sys.executable, __file__, "--hub"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        latencies = sorted(asyncio.run(hand_over(ids)))
    finally:
        child.communicate("", timeout=60)
    costs = look_cost()
    backend = db.get_engine().url.get_backend_name()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(
        f"{args.runs} runs handed over on {backend} ({args.history:,} runs in the table), "
        f"the hub looking every {sync.HANDOVER_EVERY:.1f} s:"
    )
    print(
        f"  queued -> started   median {statistics.median(latencies):.2f} s   "
        f"p95 {p95:.2f} s   max {latencies[-1]:.2f} s"
    )
    print(
        f"  the hub's look      median {statistics.median(costs):.2f} ms   "
        f"p95 {costs[int(len(costs) * 0.95) - 1]:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
