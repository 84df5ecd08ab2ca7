"""Benchmark: a full Shopify sync of a sandbox shop into a temporary SQLite hub database.

The real connector and sync engine read every stream of a seeded sandbox shop over real HTTP
(the sandbox runs in a uvicorn thread, its clock ``--time-scale`` times faster than real
time, so Shopify's restore rate is reached in seconds). Prints records/s per stream, the
share of the shop's cost-rate bound the sync used, THROTTLED responses and peak RSS, for
the given shop (N) and one ``--growth`` times larger (4N), each in its own process, so
their peak RSS compare. Figures only, no assertions:

    python bench/shopify_sync.py [--products 1500 --orders 1500 --customers 500 --plan standard]
                                 [--time-scale 20] [--growth 4]

The defaults take about 2 minutes here (N about 40 s, 4N about 75 s); --growth 1 syncs N only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

import sqlalchemy as sa  # noqa: E402
from sqlmodel import SQLModel, select  # noqa: E402

from connectors.base import StoredCredential  # noqa: E402
from connectors.sandbox.core import SandboxClock  # noqa: E402
from connectors.sandbox.shopify.app import ShopifySandbox  # noqa: E402
from connectors.sandbox.shopify.data import PLANS  # noqa: E402
from connectors.sandbox.shopify.graphql_api import admin_schema  # noqa: E402
from connectors.shopify import client as client_module  # noqa: E402
from connectors.shopify.client import throttle_for  # noqa: E402
from connectors.shopify.connector import ShopifyConnector  # noqa: E402
from dashboard import db  # noqa: E402
from dashboard.models import SyncRun  # noqa: E402
from dashboard.services.credentials import save_credential  # noqa: E402
from dashboard.services.integrations import create_integration, mark_connected  # noqa: E402
from dashboard.services.sync import SyncEngine  # noqa: E402
from tests.sandbox_server import (  # noqa: E402
    apps,
    control_headers,
    running_sandbox,
    shopify_install,
)

SHOP = "bench-sync.myshopify.com"
FIGURES = "FIGURES "  # the line a --single run hands its figures to the parent on
SCOPES = "read_products,read_inventory,read_orders,read_customers,read_locations"


class CostMeter:
    """Points the sandbox's bucket really paid for one shop: charged minus refunded."""

    def __init__(self, sandbox: ShopifySandbox, shop: str) -> None:
        self.spent = 0.0
        self._lock = threading.Lock()  # the sandbox charges from worker threads
        charge, refund = sandbox.charge, sandbox.refund

        def metered_charge(name: str, cost: int) -> bool:
            paid = charge(name, cost)
            if paid and name == shop:
                with self._lock:
                    self.spent += cost
            return paid

        def metered_refund(name: str, points: int) -> None:
            refund(name, points)
            if name == shop:
                with self._lock:
                    self.spent -= points

        sandbox.charge = metered_charge  # type: ignore[method-assign]
        sandbox.refund = metered_refund  # type: ignore[method-assign]


class _SandboxAsyncio:
    """``asyncio`` as the client sees it, with ``sleep`` on the sandbox's clock."""

    def __init__(self, clock: SandboxClock) -> None:
        self.sleep = clock.sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


def client_on_sandbox_clock(clock: SandboxClock) -> None:
    """Run the client's throttle on platform time, as it runs against the real Shopify.

    Otherwise the client would measure the sandbox's scaled clock in real seconds: its
    waits would follow the documented restore rate per *real* second, time_scale times too
    slow, and the figures would describe that mismatch rather than the client.
    """
    client_module.time = SimpleNamespace(monotonic=clock.monotonic)  # type: ignore[assignment]
    client_module.asyncio = _SandboxAsyncio(clock)  # type: ignore[assignment]
    throttle_for(SHOP).updated = clock.monotonic()


def isolated_hub(data_dir: Path) -> None:
    """Point the hub at a fresh SQLite database; ignore the developer's .env and HUB_ vars."""
    for name in list(os.environ):
        if name.startswith("HUB_") or name in {"DATABASE_URL", "REDIS_URL"}:
            del os.environ[name]
    os.environ.update(
        HUB_DATA_DIR=str(data_dir),
        HUB_ENV="test",
        HUB_SCHEDULER_ENABLED="false",
        HUB_ENCRYPTION_KEYS="bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
    )
    os.chdir(data_dir)  # pydantic-settings reads .env from the working directory
    db.reset_engines()
    SQLModel.metadata.create_all(db.get_engine())


def connect(base: str, sizes: dict[str, Any], shop: str = SHOP) -> uuid.UUID:
    """Create ``shop`` in the sandbox, install the app on it and connect it to the hub."""
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": shop, **sizes},
        timeout=120,
    ).raise_for_status()
    token = shopify_install(base, shop, scopes=SCOPES)
    with db.session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name="Bench shop", shop_domain=shop
        )
        save_credential(
            session=session,
            integration_id=integration.id,
            credential=StoredCredential("access_token", token, SCOPES.split(",")),
        )
        mark_connected(session=session, integration_id=integration.id)
        return integration.id


async def sync(base: str, integration_id: uuid.UUID, **settings_: Any) -> list[SyncRun]:
    """Sync every stream of the integration; ``settings_`` add connector settings (e.g.
    ``shopify_bulk_threshold``)."""
    settings = {
        "shopify_client_id": "sandbox-shopify-client-id",
        "shopify_client_secret": apps(base).shopify_client_secret,
        "shopify_scopes": SCOPES,
        "shopify_base_url": f"{base}/shopify",
        **settings_,
    }
    engine = SyncEngine(connector_factory=lambda _: ShopifyConnector.from_settings(settings))
    run_ids = await engine.request_sync(integration_id=integration_id)
    await engine.wait()
    with db.session_scope() as session:
        runs = session.exec(select(SyncRun).where(sa.column("id").in_(run_ids))).all()
        return sorted(runs, key=lambda r: r.stream)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1500)
    parser.add_argument("--variants-per-product", type=int, default=2)
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--locations", type=int, default=2)
    parser.add_argument("--plan", choices=sorted(PLANS), default="standard")
    # At 20x the sandbox serves the shop's rate with room to spare on one core, so the figure
    # measures the client, not the sandbox's CPU. At 40x a lone stream at the end of a 4N
    # sync waits on the sandbox executing its pages (89% of the bound); at 100x all do.
    parser.add_argument(
        "--time-scale",
        type=float,
        default=20.0,
        help="platform seconds per real second (the bucket refills this much faster)",
    )
    parser.add_argument(
        "--client-clock",
        choices=("sandbox", "real"),
        default="sandbox",
        help="sandbox: the client's throttle runs on platform time (as against Shopify); "
        "real: on real time, so it must learn the scaled restore rate from responses",
    )
    parser.add_argument(
        "--growth",
        type=int,
        default=4,
        help="also sync a shop this many times larger, each size in its own process, so "
        "their peak RSS compare (1: only the given size)",
    )
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """Sync one shop of the given size; print its figures and return them."""
    sizes = {
        "products": args.products,
        "variants_per_product": args.variants_per_product,
        "orders": args.orders,
        "customers": args.customers,
        "locations": args.locations,
        "plan": args.plan,
    }
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        isolated_hub(Path(tmp))
        with running_sandbox(seed=7, time_scale=args.time_scale) as (base, app):
            sandbox: ShopifySandbox = app.state.sandbox.extras["shopify"]
            clock = app.state.sandbox.clock
            integration_id = connect(base, sizes)
            admin_schema()  # built once on first use; not part of the sync's figures
            if args.client_clock == "sandbox":
                client_on_sandbox_clock(clock)
            meter = CostMeter(sandbox, SHOP)
            bucket = sandbox.buckets[SHOP]
            platform_start, real_start = clock.monotonic(), time.perf_counter()
            runs = asyncio.run(sync(base, integration_id))
            real_seconds = time.perf_counter() - real_start
            platform_seconds = clock.monotonic() - platform_start
            throttle = throttle_for(SHOP)
            served = dict(sandbox.stats)
        db.reset_engines()

    print(
        f"shop: {args.products:,} products x {args.variants_per_product} variants, "
        f"{args.orders:,} orders, {args.customers:,} customers, {args.locations} locations; "
        f"plan {args.plan}; sandbox time x{args.time_scale:g}; client on {args.client_clock} time"
    )
    print(f"{'stream':<10} {'status':<10} {'records':>9} {'pages':>6} {'seconds':>8} {'rec/s':>9}")
    total_records = 0
    for run in runs:
        seconds = (
            (run.finished_at - run.started_at).total_seconds()
            if run.finished_at and run.started_at
            else float("nan")
        )
        total_records += run.records_read
        print(
            f"{run.stream:<10} {run.status:<10} {run.records_read:>9,} {run.pages:>6} "
            f"{seconds:>8.2f} {run.records_read / seconds if seconds else 0:>9,.0f}"
        )
        if run.error:
            print(f"  error: {run.error}")
    print(
        f"all streams (concurrently): {total_records:,} records in {real_seconds:.2f} s = "
        f"{total_records / real_seconds:,.0f} records/s"
    )
    spent_rate = meter.spent / platform_seconds
    bound = bucket.maximum + bucket.restore_rate * platform_seconds
    print(
        f"cost: {meter.spent:,.0f} points over {platform_seconds:,.0f} platform s = "
        f"{spent_rate:,.1f} points/s vs restoreRate {bucket.restore_rate:,.0f}/s "
        f"({spent_rate / bucket.restore_rate:.0%} of the sustained rate; "
        f"{meter.spent / bound:.0%} of the bound incl. the initial {bucket.maximum:,.0f}-point "
        "bucket)"
    )
    print(
        f"requests: {served['requests']:,} served, {served['throttled']} THROTTLED "
        f"(client counted {throttle.throttled}); client waited {throttle.waited:,.1f} "
        f"{args.client_clock} s for the bucket, estimating {throttle.restore_rate:,.0f} points/s"
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak_mib:,.0f} MiB (hub and in-process sandbox together)")
    return {
        "records": total_records,
        "records_per_s": total_records / real_seconds,
        "share_of_bound": meter.spent / bound,
        "throttled": served["throttled"],
        "peak_mib": peak_mib,
        "succeeded": all(run.status == "succeeded" for run in runs),
    }


def grown(args: argparse.Namespace, factor: int) -> list[str]:
    """The command line of the same benchmark on a shop ``factor`` times larger."""
    argv = [sys.executable, __file__, "--single"]
    for name in ("products", "orders", "customers"):
        argv += [f"--{name}", str(getattr(args, name) * factor)]
    argv += ["--variants-per-product", str(args.variants_per_product)]
    argv += ["--locations", str(args.locations), "--plan", args.plan]
    argv += ["--time-scale", f"{args.time_scale:g}", "--client-clock", args.client_clock]
    return argv


def main() -> int:
    args = parse_args()
    if args.single or args.growth <= 1:
        figures = run_one(args)
        print(FIGURES + json.dumps(figures))
        return 0 if figures["succeeded"] else 1
    # Each size in a fresh process: peak RSS is a high-water mark of the whole process.
    rows = []
    for factor in (1, args.growth):
        print(f"--- N x{factor}", flush=True)
        done = subprocess.run(grown(args, factor), capture_output=True, text=True, check=False)
        figures = None
        for line in done.stdout.splitlines():
            if line.startswith(FIGURES):
                figures = json.loads(line.removeprefix(FIGURES))
            else:
                print(line)
        if figures is None:
            print(done.stderr[-2000:])
            return 1
        rows.append((factor, figures))
    print("--- as N grows (one process each)")
    print(f"{'N':>4} {'records':>9} {'rec/s':>7} {'of bound':>9} {'THROTTLED':>10} {'peak RSS':>9}")
    for factor, f in rows:
        print(
            f"{'x' + str(factor):>4} {f['records']:>9,} {f['records_per_s']:>7,.0f} "
            f"{f['share_of_bound']:>9.0%} {f['throttled']:>10} {f['peak_mib']:>5,.0f} MiB"
        )
    return 0 if all(f["succeeded"] for _, f in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
