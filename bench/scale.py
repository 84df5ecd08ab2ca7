"""Benchmark: many integrations sharing one hub process.

200 integrations x 3 streams (products, customers, orders) by default, every stream synced
at once through the engine with its concurrency bound, from a connector that answers each
page after a simulated platform latency. Prints:

- the scheduler's overhead: one reconcile of the job store with every stream, and a
  steady-state reconcile (nothing to change);
- total records/s through the process;
- fairness: min/max of the per-integration throughput (an integration's records over the time
  from its first run's start to its last run's end), and how long runs waited in the queue;
- event-loop lag, measured by a ticker task that asks to wake every 5 ms;
- the latency of the query the Runs page polls every second, sampled while the syncs run;
- peak RSS.

Figures only, no assertions. On a temporary SQLite file unless --database-url is given:

    python bench/scale.py [--integrations 200 --records 100 --latency-ms 20 --concurrency 8]

With ``--workers N`` the runs are queued for any process (as the scheduler queues them) and
N worker processes (``hub worker``'s engine, each ``--concurrency`` runs at once) claim them
from the database, woken by the change feed; it then also prints runs/s, the queue wait p99
and each process's peak RSS. The issue's scale, on PostgreSQL:

    python bench/scale.py --workers 2 --integrations 10000 --concurrency 50 \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

With ``--workers N --sustain S`` the runs are not queued all at once: the hub's own
scheduler queues them as they fall due, on a clock where a schedule minute lasts
``--minute-seconds``, for S seconds; it prints fair share over time (``_sustained.py``):

    python bench/scale.py --workers 2 --integrations 200 --concurrency 4 --sustain 330 \
        --minute-seconds 2 --database-url postgresql://postgres@127.0.0.1:5432/postgres

With ``--sandbox`` the integrations are real Shopify shops of the platform sandbox (its own
process, clock at 100x), connected through its OAuth endpoints and synced by the real
connector over HTTP, e.g. the issue's size:

    python bench/scale.py --sandbox --integrations 1000 --concurrency 100 --records 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

import httpx  # noqa: E402
from _databases import fresh_database  # noqa: E402
from _runs import report  # noqa: E402
from _stats import percentile  # noqa: E402
from _sustained import sustain  # noqa: E402
from sqlmodel import SQLModel, select  # noqa: E402

import dashboard.models  # noqa: E402, F401  registers the tables
from connectors.base import (  # noqa: E402
    Batch,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordKind,
    StoredCredential,
    StreamSpec,
    UnifiedRecord,
)
from connectors.sandbox.installer import install_shopify  # noqa: E402
from connectors.shopify.connector import ShopifyConnector  # noqa: E402
from dashboard import db  # noqa: E402
from dashboard.db import in_session, session_scope  # noqa: E402
from dashboard.models import SyncRun  # noqa: E402
from dashboard.services import runs as runs_service  # noqa: E402
from dashboard.services.credentials import save_credential  # noqa: E402
from dashboard.services.integrations import create_integration, mark_connected  # noqa: E402
from dashboard.services.scheduler import HubScheduler  # noqa: E402
from dashboard.services.sync import SyncEngine  # noqa: E402
from dashboard.settings import get_settings  # noqa: E402
from tests.sandbox_server import apps, control_headers, sandbox_process  # noqa: E402

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
STREAMS: dict[str, tuple[RecordKind, Any]] = {
    "products": (RecordKind.PRODUCT, lambda i: {"title": f"Product {i}", "sku": f"SKU-{i}"}),
    "customers": (RecordKind.CUSTOMER, lambda i: {"email": f"c{i}@example.com"}),
    "orders": (
        RecordKind.ORDER,
        lambda i: {"name": f"#{1000 + i}", "total_price": "42.00", "currency": "EUR"},
    ),
}


class LatencyConnector(Connector):
    """``records`` records per stream in pages, each page after ``latency`` seconds; with
    ``changing``, every run finds ``records`` new ones past its cursor (a shop that keeps
    changing, for runs on a schedule), else a synced stream has nothing new."""

    platform = "shopify"
    label = "Bench"
    streams = tuple(
        StreamSpec(name, name.title(), "bench", (kind,)) for name, (kind, _) in STREAMS.items()
    )

    def __init__(
        self, records: int, page_size: int, latency: float, *, changing: bool = False
    ) -> None:
        self.records, self.page_size, self.latency = records, page_size, latency
        self.changing = changing

    async def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        kind, fields = STREAMS[stream]
        start = 0 if cursor is None else int(cursor["next"])
        end = start + self.records if self.changing else self.records
        for first in range(start, end, self.page_size):
            await asyncio.sleep(self.latency)  # the platform answering over the network
            last = min(first + self.page_size, end)
            records = [
                UnifiedRecord(
                    kind=kind,
                    external_id=f"{stream}-{i}",
                    fields=fields(i),
                    raw={"id": i},
                    remote_updated_at=EPOCH + timedelta(seconds=i),
                )
                for i in range(first, last)
            ]
            yield Batch(records=records, cursor={"next": last}, total_hint=end, done=last)


def latency_connector(args: argparse.Namespace) -> LatencyConnector:
    return LatencyConnector(
        args.records, args.page_size, args.latency_ms / 1000, changing=bool(args.sustain)
    )


async def tick(lags: list[float], stop: asyncio.Event, every: float = 0.005) -> None:
    """How late the event loop wakes a task that asks to wake every ``every`` seconds."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(every)
        lags.append(time.perf_counter() - asked - every)


async def poll_runs_page(latencies: list[float], stop: asyncio.Event) -> None:
    """The Runs page's query, once a second per open page; sampled every 100 ms here."""
    while not stop.is_set():
        began = time.perf_counter()
        await in_session(lambda s: runs_service.list_runs(session=s, limit=50))
        latencies.append(time.perf_counter() - began)
        await asyncio.sleep(0.1)


def create_integrations(count: int, tokens: list[str] | None = None) -> list[uuid.UUID]:
    ids = []
    for start in range(0, count, 500):  # one transaction per 500: a network database's round trips
        ids += _create_integrations(range(start, min(count, start + 500)), tokens)
    return ids


def _create_integrations(numbers: range, tokens: list[str] | None) -> list[uuid.UUID]:
    ids = []
    with session_scope() as session:
        for n in numbers:
            integration = create_integration(
                session=session, platform="shopify", display_name=f"Shop {n:04d}",
                shop_domain=f"bench-{n}.myshopify.com", streams=dict.fromkeys(STREAMS, 15),
            )  # fmt: skip
            if tokens is not None:
                save_credential(
                    session=session,
                    integration_id=integration.id,
                    credential=StoredCredential("access_token", tokens[n], ["read_products"]),
                )
            mark_connected(session=session, integration_id=integration.id)
            ids.append(integration.id)
    return ids


def sandbox_shops(base: str, count: int, records: int) -> list[str]:
    """Create ``count`` small shops in the sandbox and approve the app on each: tokens."""
    tokens = []
    with httpx.Client(base_url=base, headers=control_headers(base), timeout=30) as client:
        for n in range(count):
            shop = f"bench-{n}.myshopify.com"
            client.post(
                "/_sandbox/shopify/shops",
                json={"shop": shop, "products": records, "orders": records, "customers": records,
                      "plan": "plus"},
            ).raise_for_status()  # fmt: skip
            token = install_shopify(
                client, shop, apps(base), scopes="read_products,read_orders,read_customers"
            )
            tokens.append(str(token["access_token"]))
    return tokens


async def scheduler_overhead() -> tuple[float, float, int]:
    hub = HubScheduler(holder="bench")
    await hub._start_scheduler()
    assert hub.scheduler is not None
    hub.scheduler.pause()  # measure the bookkeeping only; the syncs below start directly
    try:
        began = time.perf_counter()
        await hub.reconcile()
        first = time.perf_counter() - began
        began = time.perf_counter()
        await hub.reconcile()
        steady = time.perf_counter() - began
        assert hub.scheduler is not None
        jobs = len(hub.scheduler.get_jobs())
        hub.scheduler.remove_all_jobs()  # the syncs below are started directly, all at once
    finally:
        hub._stop_scheduler()
    return first, steady, jobs


async def run(args: argparse.Namespace) -> None:
    source = (
        "sandbox Shopify shops (clock 100x), real connector over HTTP"
        if args.sandbox_base
        else f"pages of {args.page_size} after {args.latency_ms} ms each"
    )
    print(
        f"{args.integrations} integrations x {len(STREAMS)} streams x {args.records} records, "
        f"{source}; HUB_SYNC_MAX_CONCURRENCY={args.concurrency}; "
        f"{db.get_engine().url.get_backend_name()}"
    )
    began = time.perf_counter()
    tokens = None
    if args.sandbox_base:
        tokens = await asyncio.to_thread(
            sandbox_shops, args.sandbox_base, args.integrations, args.records
        )
    integration_ids = await asyncio.to_thread(create_integrations, args.integrations, tokens)
    print(f"set-up: {args.integrations} integrations in {time.perf_counter() - began:.1f} s")

    first, steady, jobs = await scheduler_overhead()
    print(
        f"scheduler: first reconcile of {jobs} jobs {first * 1000:.0f} ms, "
        f"steady-state reconcile {steady * 1000:.0f} ms (every 10 s in the lease holder)"
    )

    if args.workers:
        await across_workers(args, integration_ids)
        return
    connector: Connector
    if args.sandbox_base:
        connector = ShopifyConnector.from_settings({
            "shopify_client_id": apps(args.sandbox_base).shopify_client_id,
            "shopify_client_secret": apps(args.sandbox_base).shopify_client_secret,
            "shopify_scopes": "read_products,read_orders,read_customers",
            "shopify_base_url": f"{args.sandbox_base}/shopify",
        })  # fmt: skip
    else:
        connector = latency_connector(args)
    engine = SyncEngine(connector_factory=lambda _: connector, max_concurrency=args.concurrency)
    stop = asyncio.Event()
    lags: list[float] = []
    page_latencies: list[float] = []
    probes = [
        asyncio.create_task(tick(lags, stop)),
        asyncio.create_task(poll_runs_page(page_latencies, stop)),
    ]
    began = time.perf_counter()
    run_ids: list[uuid.UUID] = []
    for integration_id in integration_ids:  # "Sync all now" on every integration, in turn
        run_ids += await engine.request_sync(integration_id=integration_id)
    queued = time.perf_counter() - began
    await engine.wait()
    wall = time.perf_counter() - began
    stop.set()
    await asyncio.gather(*probes)

    report(wall, queued, len(run_ids), in_flight=args.concurrency)
    print(
        f"event-loop lag: p50 {percentile(lags, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(lags, 0.99) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms "
        f"({len(lags)} ticks)"
    )
    print(
        f"Runs page query while syncing: p50 {percentile(page_latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(page_latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(page_latencies) * 1000:.0f} ms"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


async def across_workers(args: argparse.Namespace, integration_ids: list[uuid.UUID]) -> None:
    """Queue every stream of every integration for any process, oldest first (as the lease
    holder queues due runs), while ``args.workers`` processes claim and run them."""
    from dashboard.services.changefeed import QUEUE, changefeed_lifespan
    from dashboard.services.sync_queue import _queue_runs

    children = await asyncio.to_thread(spawn_workers, args)
    try:
        await asyncio.sleep(3)  # the workers are up and listening
        if args.sustain:
            async with changefeed_lifespan():
                await sustain(args, integration_ids, len(STREAMS), latency_connector(args))
            return
        began = time.perf_counter()
        async with changefeed_lifespan() as feed:
            for start in range(0, len(integration_ids), 200):
                chunk = integration_ids[start : start + 200]

                def queue(session: Any, chunk: list[uuid.UUID] = chunk) -> None:
                    for integration_id in chunk:
                        _queue_runs(session, integration_id, None, "schedule", False)

                await in_session(queue)
                feed.changed(QUEUE)
        queued = time.perf_counter() - began
        total = len(integration_ids) * len(STREAMS)
        while True:
            if await in_session(_unfinished) == 0:
                break
            await asyncio.sleep(0.5)
        wall = time.perf_counter() - began
    finally:
        outputs = await asyncio.to_thread(stop_workers, children)
        print("peak RSS per worker process: " + ", ".join(o.strip().split()[-1] for o in outputs))
    report(wall, queued, total, in_flight=args.concurrency * args.workers)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the queueing process {peak:.0f} MB")


def spawn_workers(args: argparse.Namespace) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--records", str(args.records),
        "--page-size", str(args.page_size), "--latency-ms", str(args.latency_ms),
        "--concurrency", str(args.concurrency), "--sustain", str(args.sustain),
    ]  # fmt: skip
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(args.workers)
    ]


def stop_workers(children: list[subprocess.Popen[str]]) -> list[str]:
    for process in children:
        process.send_signal(signal.SIGTERM)
    return [process.communicate(timeout=60)[0] for process in children]


def _unfinished(session: Any) -> int:
    from sqlmodel import col, func

    from dashboard.models import ACTIVE_RUN_STATUSES

    return int(
        session.exec(
            select(func.count())
            .select_from(SyncRun)
            .where(col(SyncRun.status).in_(ACTIVE_RUN_STATUSES))
        ).one()
    )


def child(args: argparse.Namespace) -> None:
    """A worker process: the engine claiming queued runs until SIGTERM; prints its peak RSS."""
    from dashboard.services import sync
    from dashboard.services.changefeed import changefeed_lifespan

    async def serve() -> None:
        connector = latency_connector(args)
        sync.set_engine(
            SyncEngine(connector_factory=lambda _: connector, max_concurrency=args.concurrency)
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with changefeed_lifespan(), sync.engine_lifespan(kind="worker"):
            await stop.wait()

    asyncio.run(serve())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak-rss {peak:.0f}MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--integrations", type=int, default=200)
    parser.add_argument("--records", type=int, default=100, help="records per stream")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per page")
    parser.add_argument("--concurrency", type=int, default=8, help="HUB_SYNC_MAX_CONCURRENCY")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument(
        "--sandbox", action="store_true", help="real Shopify connector against the sandbox"
    )
    parser.add_argument(
        "--workers", type=int, default=0,
        help="worker processes claiming the runs (default 0: this process runs them)",
    )  # fmt: skip
    parser.add_argument(
        "--sustain", type=float, default=0,
        help="with --workers: seconds of the hub's own scheduler queueing due runs (a clock "
        "compressed by --minute-seconds) instead of every run at once",
    )  # fmt: skip
    parser.add_argument(
        "--minute-seconds", type=float, default=1.0,
        help="with --sustain: how long a schedule minute lasts (streams run every 15)",
    )  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sustain and not args.workers:
        parser.error("--sustain needs --workers: the runs it schedules are claimed by workers")
    if args.child:  # one of --workers: the settings (database, data dir) come from the parent
        child(args)
        return
    args.sandbox_base = None
    if args.sandbox:
        with sandbox_process(time_scale=100.0, seed=5) as base:
            args.sandbox_base = base
            run_in_temp_hub(args)
        return
    run_in_temp_hub(args)


def run_in_temp_hub(args: argparse.Namespace) -> None:
    # A PostgreSQL URL names the server: the bench's tables go into a database of its own.
    with tempfile.TemporaryDirectory() as data_dir, fresh_database(args.database_url) as url:
        os.environ["HUB_DATA_DIR"] = data_dir
        os.environ.pop("DATABASE_URL", None)
        if args.database_url:
            os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        db.reset_engines()
        SQLModel.metadata.create_all(db.get_engine())
        asyncio.run(run(args))
        db.reset_engines()


if __name__ == "__main__":
    main()
