"""Benchmark: signed Shopify webhooks into the hub, from a load generator on loopback.

The hub's HTTP routes and lifespan (webhook consumers, recovery sweep, sync engine) run in
``--workers`` worker processes of Granian (the server ``hub serve`` runs; ``--server uvicorn``
for the pure-Python one) on a fresh PostgreSQL database (SQLite with one
worker when PostgreSQL is not reachable), the sandbox in its own process, the load
generator Debian's wrk (``make wrk``; ``--load httpx`` for the one in this process, whose own
CPU on a small machine limits the figures). The shop is connected, so every
``products/update`` is applied as in production: the product is fetched from the sandbox
and stored. Prints verified/s (2xx answers), latency p50/p99, whether every accepted
delivery was stored once and applied once, how long applying took after the last answer,
and the workers' RSS before and after.

    python bench/webhook_ingest.py [--deliveries 10000] [--concurrency 50] [--products 200]
                                   [--workers 2] [--kill-one] [--postgres URL]
                                   [--server granian|uvicorn] [--load wrk|httpx]
                                   [--rate 1000]

``--rate`` paces wrk: deliveries go out at that rate over ``--concurrency`` connections, as a
platform sends them, rather than in a closed loop that keeps ``--concurrency`` in flight (where
the latency is mostly the queue the generator keeps full: 50 in flight at 1,000/s is 50 ms).

``--kill-one`` kills one worker with SIGKILL halfway through: deliveries it had not answered
fail (Shopify would send them again); every one it answered is applied by another process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

from _databases import fresh_database  # noqa: E402
from _wrk_load import WRK, load_with_wrk  # noqa: E402

from connectors.sandbox.installer import install_shopify  # noqa: E402
from tests.sandbox_server import apps, control_headers, free_port, sandbox_process  # noqa: E402

SHOP = "bench-webhooks.myshopify.com"
SCOPES = "read_products"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


# --- the hub's side: what each uvicorn worker serves ----------------------------------------------


def api_app() -> Any:
    """The hub's HTTP routes with its lifespan, without the Reflex UI (uvicorn --factory)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from dashboard.api import build_api
    from dashboard.services.lifespan import hub_lifespan

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with hub_lifespan():
            yield

    return Starlette(routes=[Mount("/", app=build_api(Starlette()))], lifespan=lifespan)


# --- set-up ------------------------------------------------------------------------------------


def postgres_reachable(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=2):
            return True
    except Exception:
        return False


def hub_environment(data_dir: Path, database_url: str, base: str) -> dict[str, str]:
    sandbox_apps = apps(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=database_url,
        HUB_DATA_DIR=str(data_dir),
        HUB_ENV="test",
        HUB_SANDBOX="false",
        HUB_SCHEDULER_ENABLED="false",
        HUB_SHOPIFY_BASE_URL=f"{base}/shopify",
        HUB_SHOPIFY_CLIENT_ID=sandbox_apps.shopify_client_id,
        HUB_SHOPIFY_CLIENT_SECRET=sandbox_apps.shopify_client_secret,
        HUB_ENCRYPTION_KEYS="bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
        PYTHONPATH=str(ROOT),
    )
    return env


def connect_shop(env: dict[str, str], base: str, products: int, port: int) -> None:
    """The shop in the sandbox, and connected in the hub's database (tables created)."""
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": SHOP, "products": products, "orders": 1, "customers": 1},
        timeout=60,
    ).raise_for_status()
    with httpx.Client(base_url=base) as client:  # the callback the sandbox knows: the hub's
        token = install_shopify(
            client, SHOP, apps(base), scopes=SCOPES,
            redirect_uri=f"http://localhost:{port}/api/oauth/shopify/callback",
        )["access_token"]  # fmt: skip
    script = f"""
from sqlmodel import SQLModel
from connectors.base import StoredCredential
from dashboard import db
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
SQLModel.metadata.create_all(db.get_engine())
with db.session_scope() as session:
    integration = create_integration(session=session, platform="shopify",
                                     display_name="Bench webhooks", shop_domain={SHOP!r})
    save_credential(session=session, integration_id=integration.id,
                    credential=StoredCredential("access_token", {token!r}, [{SCOPES!r}]))
    mark_connected(session=session, integration_id=integration.id)
"""
    subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(parent: int) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    return [
        pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the load ----------------------------------------------------------------------------------


def delivery(secret: str, product: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": product,
            "admin_graphql_api_id": f"gid://shopify/Product/{product}",
            "title": f"Product {product}",
            "updated_at": "2026-12-06T08:00:00Z",
        }
    ).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return body, {
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Hmac-Sha256": signature.decode(),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-API-Version": "2026-10",
        "Content-Type": "application/json",
    }


async def load(
    url: str, secret: str, *, deliveries: int, concurrency: int, products: list[int],
    on_half: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Send ``deliveries`` signed webhooks, ``concurrency`` at a time; latencies of 2xx."""
    latencies: list[float] = []
    failed = 0
    accepted: list[str] = []
    prepared = [delivery(secret, products[i % len(products)]) for i in range(deliveries)]
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def sender() -> None:
            nonlocal next_index, failed
            while next_index < deliveries:
                index = next_index
                next_index += 1
                if index == deliveries // 2 and on_half is not None:
                    on_half()
                body, headers = prepared[index]
                started = time.perf_counter()
                try:
                    answer = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    failed += 1
                    continue
                if answer.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                    accepted.append(headers["X-Shopify-Webhook-Id"])
                else:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "seconds": seconds,
        "accepted": accepted,
        "failed": failed,
        "per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan"),
    }


def event_states(env: dict[str, str]) -> dict[str, Any]:
    """Stored events: count per status, attempts > 1, and their webhook ids."""
    script = """
import json
import sqlalchemy as sa
from dashboard import db
from dashboard.models import WebhookEvent
with db.session_scope() as session:
    rows = session.execute(sa.select(WebhookEvent.webhook_id, WebhookEvent.status,
                                     WebhookEvent.attempts)).all()
print(json.dumps([[w, s, a] for w, s, a in rows]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    statuses: dict[str, int] = {}
    for _, status, _ in rows:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "ids": [row[0] for row in rows],
        "statuses": statuses,
        "retried": sum(1 for row in rows if row[2] > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--rate", type=float, default=None,
        help="wrk sends on a schedule at this many a second over --concurrency connections "
        "(as a platform delivers); default: each connection sends again once answered",
    )  # fmt: skip
    parser.add_argument("--products", type=int, default=200, help="distinct products updated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-one", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("HUB_BENCH_POSTGRES", POSTGRES))
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument(
        "--load", choices=("wrk", "httpx"), default="wrk" if WRK else "httpx",
        help="the load generator: Debian's wrk (make wrk), or httpx in this process",
    )  # fmt: skip
    args = parser.parse_args()
    postgres = args.postgres if postgres_reachable(args.postgres) else None
    workers = args.workers if postgres else 1
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp,
        fresh_database(postgres) as database_url,
        sandbox_process(time_scale=1.0, seed=16, hub_port=port) as base,
    ):
        env = hub_environment(Path(tmp), database_url, base)
        connect_shop(env, base, args.products, port)
        secret = apps(base).shopify_client_secret
        if args.server == "granian":
            command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                       "--working-dir", str(ROOT / "bench"), "--host", "127.0.0.1",
                       "--port", str(port), "--workers", str(workers), "--no-ws",
                       "--respawn-failed-workers",  # as hub serve does
                       "--log-level", "warning", "webhook_ingest:api_app"]  # fmt: skip
        else:
            command = [sys.executable, "-m", "uvicorn", "webhook_ingest:api_app", "--factory",
                       "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1",
                       "--port", str(port), "--workers", str(workers), "--no-access-log",
                       "--log-level", "warning"]  # fmt: skip
        server = subprocess.Popen(command, env=env, cwd=tmp)
        try:
            url = f"http://127.0.0.1:{port}/api/webhooks/shopify"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the hub did not start") from None
                    time.sleep(0.3)
            # Warm-up: each worker's first request builds what is built once.
            asyncio.run(load(url, secret, deliveries=50, concurrency=workers * 2, products=[1]))
            time.sleep(2)
            pids = worker_pids(server.pid)
            rss_before = {pid: rss_mib(pid) for pid in pids}
            cpu_before = {pid: cpu_seconds(pid) for pid in pids}
            killed: list[int] = []

            def kill_one() -> None:
                if args.kill_one and pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])

            products = list(range(1, args.products + 1))
            if args.load == "wrk":
                prepared = [delivery(secret, products[i % len(products)])
                            for i in range(args.deliveries)]  # fmt: skip
                figures = load_with_wrk(url, prepared, shop=SHOP, concurrency=args.concurrency,
                                        on_half=kill_one if args.kill_one else None,
                                        rate=args.rate)  # fmt: skip
            else:
                figures = asyncio.run(
                    load(url, secret, deliveries=args.deliveries, concurrency=args.concurrency,
                         products=products, on_half=kill_one)
                )  # fmt: skip
            answered_at = time.perf_counter()
            rss_after = {pid: rss_mib(pid) for pid in worker_pids(server.pid)}
            cpu_load = sum(cpu_seconds(p) - cpu_before[p] for p in rss_after if p in cpu_before)
            # Applied: every stored event leaves "received" (the sweep takes a killed
            # worker's after its grace period).
            while True:
                states = event_states(env)
                waiting = states["statuses"].get("received", 0)
                if not waiting or time.perf_counter() - answered_at > args.drain_timeout:
                    break
                time.sleep(1)
            drained = time.perf_counter() - answered_at
            alive = [p for p in worker_pids(server.pid) if p in cpu_before]
            cpu_total = sum(cpu_seconds(p) - cpu_before[p] for p in alive)
            load_average = os.getloadavg()[0]
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    accepted = set(figures["accepted"])
    stored = states["ids"]
    print(
        f"{workers} {args.server} worker(s), {'PostgreSQL' if postgres else 'SQLite'}, concurrency "
        f"{args.concurrency}, {args.deliveries:,} products/update over {args.products} products, "
        f"load by {args.load}" + (f", paced at {args.rate:,.0f}/s" if args.rate else "")
    )
    if not figures.get("exact_accepted", True):
        # wrk counts the answers but does not name them: at least that many must be stored.
        answered = len(figures["accepted"])
        accepted = set(stored) & set(figures["all_ids"])
        sent = args.deliveries
        ours = len(set(stored) & set(figures["all_ids"]))
        # (wrk's socket errors count reconnects too: "failed" may exceed what went unanswered)
        print(
            f"wrk: {answered:,} of {sent:,} sent answered 200 ({sent - answered:,} failed or "
            f"unanswered when the load stopped); {ours:,} of them stored: "
            + ("at least the answered" if ours >= answered else "FEWER than the answered")
        )
    print(
        f"verified and stored: {len(accepted):,} in {figures['seconds']:.1f} s = "
        f"{figures['per_s']:,.0f}/s; p50 {figures['p50_ms']:.1f} ms, p99 "
        f"{figures['p99_ms']:.1f} ms; failed (not answered 200) {figures['failed']}"
        + (f"; worker {killed[0]} killed halfway" if killed else "")
        + (f"; sent late (no free connection) {figures['late']}" if args.rate else "")
    )
    print(
        f"accepted deliveries stored: {len(accepted & set(stored)):,} of {len(accepted):,}; "
        f"stored twice: {len(stored) - len(set(stored))}; statuses {states['statuses']} "
        f"(incl. the warm-up's 50); applied in {drained:.1f} s after the last answer; "
        f"retried attempts {states['retried']}"
    )
    print(
        f"workers' CPU: {cpu_load * 1000 / max(1, len(accepted)):.1f} ms per delivery while "
        f"answering, {cpu_total * 1000 / max(1, len(accepted)):.1f} ms per delivery answered "
        f"and applied (surviving workers); machine load average {load_average:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        "worker RSS MiB before -> after: "
        + ", ".join(f"{rss_before[p]:.0f} -> {rss_after.get(p, 0):.0f}" for p in rss_before)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
