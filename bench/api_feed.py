"""Benchmark: the Hub API's change feed, served by one uvicorn worker (a process of its own).

1. Records/s: a consumer reads an integration's N orders from the start to the end of the
   feed in streamed pages of 10,000 (and of 1,000), parsing every page as a client would.
   The server's peak RSS after each pass shows whether memory stays flat as pages grow.
2. Latency under load: p50/p99 of a 500-record page read at a random cursor while 20 syncs
   (another process, 20 integrations, pages of 250 orders inserted and updated) write.

On a temporary SQLite file and, when reachable, a throw-away PostgreSQL database. Figures
only, no assertions:

    python bench/api_feed.py [--orders 100000] [--samples 200] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import dashboard.models  # noqa: E402, F401  registers the tables
from connectors.base import (  # noqa: E402
    Batch,
    Connector,
    CredentialStore,
    IntegrationRef,
    RecordKind,
    StreamSpec,
    UnifiedRecord,
)
from dashboard import db  # noqa: E402
from dashboard.db import session_scope  # noqa: E402
from dashboard.settings import get_settings  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from pipeline import postgres_database  # noqa: E402

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def server_app() -> Any:
    """The hub's HTTP app without Reflex's part: what uvicorn serves here."""
    from starlette.applications import Starlette

    from dashboard.api import build_api

    return build_api(Starlette())


def order(number: int, version: int) -> UnifiedRecord:
    return UnifiedRecord(
        RecordKind.ORDER, f"gid://shopify/Order/{number}",
        {"name": f"#{1000 + number}", "financial_status": "paid", "currency": "EUR",
         "total_price": f"{version % 500}.90", "email": f"buyer{number}@example.com",
         "placed_at": EPOCH + timedelta(minutes=number)},
        {"id": number, "lines": [{"sku": f"SKU-{number % 97}", "qty": 1 + version % 3}]},
        remote_updated_at=EPOCH + timedelta(seconds=version),
    )  # fmt: skip


class OrdersConnector(Connector):
    """Pages of 250 orders, new and updated ones mixed, with a little wait between pages."""

    platform = "shopify"
    label = "Bench"
    streams = (StreamSpec("orders", "Orders", "bench", (RecordKind.ORDER,)),)

    def __init__(self, pages: int) -> None:
        self.pages = pages
        self.version = 0

    async def read_stream(
        self,
        integration: IntegrationRef,
        credentials: CredentialStore,
        stream: str,
        cursor: dict[str, Any] | None,
        *,
        full_refresh: bool = False,
    ) -> AsyncIterator[Batch]:
        for page in range(self.pages):
            self.version += 1
            records = [order(random.randrange(20_000), self.version) for _ in range(250)]
            await asyncio.sleep(0.02)  # the platform's answer time
            yield Batch(records=records, cursor={"page": page})


def new_integration(name: str) -> uuid.UUID:
    from dashboard.services.integrations import create_integration, mark_connected

    with session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name=name,
            shop_domain=f"{name.lower()}.myshopify.com", streams={"orders": 5},
        )  # fmt: skip
        mark_connected(session=session, integration_id=integration.id)
        return integration.id


def seed(integration_id: uuid.UUID, orders: int) -> float:
    from dashboard.services.records import upsert_records

    began = time.perf_counter()
    for first in range(0, orders, 1000):
        with session_scope() as session:
            upsert_records(
                session=session, integration_id=integration_id,
                records=[order(n, n) for n in range(first, min(first + 1000, orders))],
            )  # fmt: skip
    return time.perf_counter() - began


def run_syncs(seconds: float) -> None:
    """The other process: 20 integrations syncing orders, over and over, for ``seconds``."""
    from dashboard.services.sync import SyncEngine

    async def main() -> None:
        ids = [new_integration(f"Load{i}") for i in range(20)]
        connector = OrdersConnector(pages=10)
        engine = SyncEngine(max_concurrency=20, connector_factory=lambda _: connector)
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            for integration_id in ids:
                await engine.request_sync(integration_id=integration_id, stream="orders")
            await engine.wait()
        print(f"  (load: {connector.version * 250:,} orders stored by 20 syncs)", flush=True)

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api_feed:server_app", "--app-dir",
         str(ROOT / "bench"), "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/api/v1/openapi.json", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(10)


def read_all(base: str, key: str, integration_id: uuid.UUID, limit: int) -> tuple[int, float]:
    url = f"{base}/api/v1/integrations/{integration_id}/records/orders"
    headers = {"Authorization": f"Bearer {key}"}
    cursor, records = None, 0
    began = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["since"] = cursor
            with client.stream("GET", url, params=params, headers=headers) as response:
                response.raise_for_status()
                page = orjson.loads(response.read())
            records += len(page["records"])
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return records, time.perf_counter() - began


def page_latencies(
    base: str, key: str, integration_id: uuid.UUID, orders: int, samples: int
) -> list[float]:
    from dashboard.services.change_feed import encode_cursor

    url = f"{base}/api/v1/integrations/{integration_id}/records/orders"
    headers = {"Authorization": f"Bearer {key}"}
    latencies = []
    with httpx.Client(timeout=60) as client:
        for _ in range(samples):
            since = encode_cursor(random.randrange(max(1, orders - 500)))
            began = time.perf_counter()
            response = client.get(url, params={"limit": 500, "since": since}, headers=headers)
            response.raise_for_status()
            assert len(response.json()["records"]) == 500
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def bench(label: str, url: str | None, args: argparse.Namespace) -> None:
    print(f"{label:10} load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    from dashboard.services.api_keys import SCOPES, create_api_key

    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "HUB_DATA_DIR": data_dir, "HUB_ENV": "test"}
        env.pop("DATABASE_URL", None)
        if url:
            env["DATABASE_URL"] = url
        os.environ.clear()
        os.environ.update(env)
        get_settings.cache_clear()
        db.reset_engines()
        SQLModel.metadata.create_all(db.get_engine())
        integration_id = new_integration("Feed")
        seconds = seed(integration_id, args.orders)
        print(f"{label:10} seeded {args.orders:,} orders in {seconds:.1f} s")
        with session_scope() as session:
            _, key = create_api_key(session=session, name="bench", scopes=SCOPES, actor="bench")
        db.reset_engines()
        with server(env) as (base, pid):
            for limit in (1_000, 10_000):
                cpu = cpu_seconds(pid)
                records, took = read_all(base, key, integration_id, limit)
                cpu = cpu_seconds(pid) - cpu
                # On a shared machine the wall-clock rate depends on everyone's load; the
                # records per CPU-second of the server process do not.
                print(
                    f"{label:10} feed, pages of {limit:>6,}: {records:,} records in {took:5.2f} s"
                    f" = {records / took:>8,.0f} records/s ({records / max(cpu, 0.01):,.0f} per "
                    f"server CPU-second); server peak RSS {peak_rss_mb(pid):.0f} MB"
                )
            page_latencies(base, key, integration_id, args.orders, 20)  # warm up
            idle = page_latencies(base, key, integration_id, args.orders, args.samples)
            load = subprocess.Popen(
                [sys.executable, str(Path(__file__)), "--run-syncs", "3600"], env=env, cwd=ROOT
            )
            try:
                time.sleep(3)  # the syncs get going
                busy = page_latencies(base, key, integration_id, args.orders, args.samples)
            finally:
                load.terminate()
                load.wait(30)
            for name, values in (("idle", idle), ("20 syncs running", busy)):
                ordered = sorted(values)
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                print(
                    f"{label:10} 500-record page, {name:16}: p50 "
                    f"{statistics.median(values):6.1f} ms, p99 {p99:6.1f} ms "
                    f"({len(values)} reads)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--run-syncs", type=float, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_syncs:
        run_syncs(args.run_syncs)
        return
    bench("SQLite", None, args)
    if not args.no_postgres:
        with postgres_database() as url:
            if url:
                bench("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
