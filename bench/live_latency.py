"""Benchmark: live latency, from a database write to its text visible in the browser.

A real hub (``hub serve``, production build, the sandbox at ``--time-scale`` x real time,
mounted at /sandbox or with ``--sandbox standalone`` in its own process, as a real platform
is elsewhere) runs 20 Shopify product syncs against 20 sandbox shops while signed-in admins
watch the Overview (or, with ``--page integrations``, the Integrations page among
``--integrations`` more seeded integrations: 10,000 by default there). The bench writes
straight to the hub's database, with the change feed running as in every hub process (without
it a PostgreSQL hub hears of the write only at its 5 s fallback): one extra integration gets
a unique name and status ``needs_reauth`` (the Overview lists it under "Waiting for
reconnection"; the Integrations page shows it in its first row), then back to ``connected``.
In chromium a MutationObserver stamps when the name appears (and disappears) in the rendered
text; latency = that moment - the start of the write.

``--viewers N`` sessions (each its own sign-in) watch at once, every write timed on each; the
hub's CPU (all its processes) over the window is printed. ``--browsers B``: only the first B
are chromium pages, the others websocket-only sessions (``_viewers.SocketViewer``: what the
hub serves per open page, without a renderer; 50 chromium pages on 2 CPUs measure chromium).

Prints p50/p95/max latency (also idle, of the write's own commit, and from the commit to the
screen: on SQLite the write waits for the single write lock the syncs' batches hold in turn),
the syncs running and the records/s synced. Figures only (goal: p95 <= 1 s, 20 syncs):

    python bench/live_latency.py [--page overview|integrations] [--integrations N]
                                 [--syncs 20 --products 8000 --samples 40 --time-scale 20]
                                 [--viewers 50 --browsers 1] [--sandbox standalone]
                                 [--database-url postgresql://...]

``--syncs 0``: an idle hub. About 1.5 minutes; the hub and browser stop however it ends."""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/x.py` puts bench/, not the root, on the path

from _databases import fresh_database  # noqa: E402
from _feed import change_feed_running  # noqa: E402
from _stats import percentile  # noqa: E402
from _viewers import open_viewers  # noqa: E402
from sqlmodel import func, select  # noqa: E402

from connectors.base import StoredCredential  # noqa: E402
from connectors.sandbox.access import new_control_token, sandbox_apps  # noqa: E402
from connectors.sandbox.installer import install_shopify  # noqa: E402
from dashboard import db  # noqa: E402
from dashboard.models import Integration, IntegrationStatus, RunStatus, SyncRun  # noqa: E402
from dashboard.services.credentials import save_credential  # noqa: E402
from dashboard.services.integrations import create_integration, mark_connected  # noqa: E402
from dashboard.services.sync import RECOVERY_EVERY, SyncEngine  # noqa: E402
from dashboard.settings import get_settings  # noqa: E402
from tests.browser.conftest import (  # noqa: E402
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    Hub,
    _free_port,
)
from tests.sandbox_server import apps, control_headers, sandbox_process  # noqa: E402

CONTROL_TOKEN = new_control_token()  # the bench hub's sandbox control token
STREAM = "products"  # one stream per integration: N integrations = N syncs running
# A page that has not shown a write after this long counts as having missed it (reported).
MISSED_AFTER = 15.0
MISSED: list[int] = []  # the viewer numbers, once per missed write
KEPT_LOG = Path(tempfile.gettempdir()) / "hub-live-bench.log"
SCOPES = "read_products,read_inventory,read_orders,read_customers,read_locations"


def hub_environment(data_dir: Path, port: int, args: argparse.Namespace) -> dict[str, str]:
    """The hub's settings, shared by the hub process and this one (same database, same key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    env.update({
        "HUB_DATA_DIR": str(data_dir), "HUB_PORT": str(port),
        "HUB_ADMIN_EMAIL": ADMIN_EMAIL, "HUB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HUB_ENCRYPTION_KEYS": "bench:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "HUB_SANDBOX": "true", "HUB_SANDBOX_CONTROL_TOKEN": CONTROL_TOKEN,
        "HUB_SANDBOX_DEMO": "false", "HUB_SANDBOX_TIME_SCALE": f"{args.time_scale:g}",
        # Every sync runs at once (the default bound is 8); no scheduled runs on top.
        "HUB_SYNC_MAX_CONCURRENCY": str(max(1, args.syncs)), "HUB_SCHEDULER_ENABLED": "false",
        "REFLEX_TELEMETRY_ENABLED": "false", "REFLEX_CHECK_LATEST_VERSION": "0",
    })  # fmt: skip
    return env


@contextlib.contextmanager
def running_hub(hub: Hub, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``hub serve`` in its own process group, stopped (TERM, then KILL) however we leave."""
    hub.cli("migrate")
    hub.cli("users", "ensure-admin")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "serve"], cwd=ROOT, env=hub.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{hub.url}/login/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def connect_shops(
    base: str, count: int, sizes: dict[str, Any], *, headers: dict[str, str],
    platform_apps: Any, callback: str,
) -> list[uuid.UUID]:  # fmt: skip
    """Sandbox shops, approved like a merchant would, connected through the hub's services.
    ``headers`` carry the sandbox's control token; the consent page sends codes only to the
    hub's registered ``callback``."""
    ids = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for index in range(count):
            shop = f"live-bench-{index:02d}.myshopify.com"
            client.post("/_sandbox/shopify/shops", json={"shop": shop, **sizes}).raise_for_status()
            granted = install_shopify(
                client, shop, platform_apps, scopes=SCOPES, redirect_uri=callback
            )
            with db.session_scope() as session:
                integration = create_integration(
                    session=session, platform="shopify", display_name=f"Live bench {index:02d}",
                    shop_domain=shop, streams={STREAM: 15},
                )  # fmt: skip
                save_credential(
                    session=session, integration_id=integration.id,
                    credential=StoredCredential("access_token", granted["access_token"],
                                                SCOPES.split(",")),
                )  # fmt: skip
                mark_connected(session=session, integration_id=integration.id, actor="bench")
                ids.append(integration.id)
    return ids


def seed_integrations(count: int) -> None:
    """Integrations that never sync, older than the probe and the syncing shops: the page reads
    its rows among them (and its watermark over all of them)."""
    import sqlalchemy as sa

    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid.uuid4(), "platform": "shopify", "display_name": f"Seeded store {index:05d}",
            "shop_domain": f"seeded-{index:05d}.myshopify.com",
            "status": ("connected", "paused", "needs_reauth", "pending")[index % 4],
            "marketplaces": [], "shop_info": {},
            "created_at": now - timedelta(days=1, seconds=index), "updated_at": now,
        }
        for index in range(count)
    ]  # fmt: skip
    with db.session_scope() as session:
        for start in range(0, len(rows), 2_000):
            session.execute(sa.insert(Integration), rows[start : start + 2_000])


def create_probe() -> uuid.UUID:
    """The integration whose name and status the bench flips (it never syncs)."""
    with db.session_scope() as session:
        integration = create_integration(
            session=session, platform="shopify", display_name="Live probe",
            shop_domain="live-probe.myshopify.com", streams={STREAM: 15},
        )  # fmt: skip
        mark_connected(session=session, integration_id=integration.id, actor="bench")
        return integration.id


def queue_syncs(ids: list[uuid.UUID]) -> None:
    """Queued without an owner: the hub process adopts and runs them (like ``hub sync``)."""

    async def queue() -> None:
        engine = SyncEngine()
        for integration_id in ids:
            await engine.request_sync(integration_id=integration_id, run_here=False)

    # In a thread: Playwright's sync API already runs an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, queue()).result()


def sync_progress() -> tuple[int, int]:
    """(runs running, records read by every run so far)."""
    with db.session_scope() as session:
        is_running = SyncRun.status == RunStatus.RUNNING.value
        running = session.exec(select(func.count()).select_from(SyncRun).where(is_running)).one()
        records = session.exec(select(func.coalesce(func.sum(SyncRun.records_read), 0))).one()
    return int(running), int(records)


def wait_running(want: int, patience: float) -> int:
    deadline = time.monotonic() + patience
    running = 0
    while time.monotonic() < deadline:
        running, _ = sync_progress()
        if running >= want:
            return running
        time.sleep(0.5)
    return running


def write_probe(
    integration_id: uuid.UUID, name: str, status: IntegrationStatus
) -> tuple[float, float]:
    """The database write under test; returns when it started (epoch seconds) and how long
    it took to commit (it waits for SQLite's write lock while the syncs write batches)."""
    started = time.time()
    with db.session_scope() as session:
        integration = session.get(Integration, integration_id)
        assert integration is not None
        integration.display_name = name
        integration.status = status.value
        integration.updated_at = datetime.now(UTC)
        session.add(integration)
    return started, time.time() - started


def seen_after(
    viewers: list[Any], text: str, *, present: bool, write: Any
) -> tuple[list[float | None], float]:
    """Arm every viewer's watch for ``text``, do ``write()``; for each viewer the seconds from
    the write's start until it showed ``text`` (``present``) or stopped showing it (None:
    not within MISSED_AFTER, counted and reported), and the write's own."""
    for viewer in viewers:
        viewer.arm(text, present=present)
    started, write_seconds = write()
    seen: list[float | None] = []
    for number, viewer in enumerate(viewers, 1):
        at = viewer.wait(MISSED_AFTER)
        if at is None:
            MISSED.append(number)
            print(f"viewer {number} did not show {text!r} in time", file=sys.stderr, flush=True)
        seen.append(None if at is None else at - started)
    return seen, write_seconds


def sample(
    viewers: list[Any], probe: uuid.UUID, index: int
) -> tuple[list[float | None], list[float | None], float]:
    """One write and its revert: seconds until each viewer showed each, and the write's own."""
    name = f"Probe {index:02d} {uuid.uuid4().hex[:8]}"
    appear, write_seconds = seen_after(viewers, name, present=True, write=lambda: (
        write_probe(probe, name, IntegrationStatus.NEEDS_REAUTH)))  # fmt: skip
    vanish, _ = seen_after(viewers, name, present=False, write=lambda: (
        write_probe(probe, "Live probe", IntegrationStatus.CONNECTED)))  # fmt: skip
    # A random phase, so the writes land anywhere in the page's 1 s poll.
    time.sleep(random.uniform(0.0, 0.3))
    return appear, vanish, write_seconds


def cpu_seconds(group: int) -> float:
    """CPU time (user + system) of every live process in the hub's process group."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:

    data_dir = tmp / "data"
    port = _free_port()
    env = hub_environment(data_dir, port, args)
    with contextlib.ExitStack() as stack:
        sandbox_base = None
        if args.sandbox == "standalone":  # its own process: the platform's CPU is not the hub's
            sandbox_base = stack.enter_context(
                sandbox_process(time_scale=args.time_scale, seed=17, hub_port=port)
            )
            platform_apps = apps(sandbox_base)
            env.update({
                "HUB_SANDBOX": "false", "HUB_SHOPIFY_BASE_URL": f"{sandbox_base}/shopify",
                "HUB_SHOPIFY_CLIENT_ID": platform_apps.shopify_client_id,
                "HUB_SHOPIFY_CLIENT_SECRET": platform_apps.shopify_client_secret,
            })  # fmt: skip
        return _measure(args, tmp, env, port, sandbox_base)


def _measure(
    args: argparse.Namespace, tmp: Path, env: dict[str, str], port: int, sandbox_base: str | None
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    data_dir = tmp / "data"
    # This process writes to the same database with the same key as the hub.
    os.environ.update({k: v for k, v in env.items() if k.startswith("HUB_")})
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    os.chdir(tmp)  # pydantic-settings reads .env from the working directory: none here
    get_settings.cache_clear()
    db.reset_engines()
    hub = Hub(url=f"http://localhost:{port}", data_dir=data_dir, env=env)
    log_path = tmp / "hub.log"
    lists = ("idle", "appear", "vanish", "writes", "committed", "running", "in_browser")
    result: dict[str, Any] = {name: [] for name in lists}
    started = time.monotonic()
    # The probe's writes tell the hub's processes, as a hub process's writes do.
    with running_hub(hub, log_path) as process, change_feed_running(), sync_playwright() as pw:
        result["boot"] = time.monotonic() - started
        seed_integrations(args.integrations)
        sizes = {"products": args.products, "variants_per_product": 2}
        callback = f"{hub.url}/api/oauth/shopify/callback"
        if sandbox_base is None:  # mounted in the hub
            base, headers, platform_apps = (
                f"{hub.url}/sandbox", control_headers(CONTROL_TOKEN), sandbox_apps(CONTROL_TOKEN)
            )  # fmt: skip
        else:
            base, headers, platform_apps = (
                sandbox_base, control_headers(sandbox_base), apps(sandbox_base)
            )  # fmt: skip
        ids = connect_shops(
            base, args.syncs, sizes, headers=headers, platform_apps=platform_apps,
            callback=callback,
        )  # fmt: skip
        probe = create_probe()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        viewers: list[Any] = []
        try:
            # Signed in and on the page before the syncs load the hub.
            viewers = open_viewers(
                browser, hub, page=args.page, count=args.viewers, browsers=args.browsers
            )
            queue_syncs(ids)
            # Until the hub adopts the queued runs (within RECOVERY_EVERY): the idle baseline.
            index = 0
            while sync_progress()[0] == 0 and len(result["idle"]) < 10:
                result["idle"] += sample(viewers, probe, index)[0]
                index += 1
            running = wait_running(args.syncs, patience=RECOVERY_EVERY * 3)
            if running < args.syncs:
                raise RuntimeError(f"only {running} of {args.syncs} syncs running")
            _, records_before = sync_progress()
            window_start, cpu_before = time.monotonic(), cpu_seconds(process.pid)
            for _ in range(args.samples):
                appear, vanish, write_seconds = sample(viewers, probe, index)
                index += 1
                result["appear"] += appear
                result["in_browser"] += appear[: args.browsers]
                result["vanish"] += vanish
                result["writes"].append(write_seconds)
                # What the hub controls: from the change being in the database to the screen.
                result["committed"] += [s - write_seconds for s in appear if s is not None]
                result["running"].append(sync_progress()[0])
            result["window"] = time.monotonic() - window_start
            result["cpu"] = cpu_seconds(process.pid) - cpu_before
            result["records"] = sync_progress()[1] - records_before
            result["load"] = os.getloadavg()[0]  # the machine's, other processes included
        finally:
            for viewer in viewers:
                viewer.close()
            browser.close()
            shutil.copy(log_path, KEPT_LOG)  # the temporary directory goes; the log stays
        if process.poll() is not None:
            raise RuntimeError(f"hub died:\n{log_path.read_text()[-3000:]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--page", choices=("overview", "integrations"), default="overview", help="the page watched"
    )
    parser.add_argument(
        "--integrations", type=int, default=None,
        help="more integrations, never syncing (default: 10,000 with --page integrations, else 0)",
    )  # fmt: skip
    parser.add_argument("--syncs", type=int, default=20, help="sandbox shops syncing at once")
    parser.add_argument(
        "--products", type=int, default=8000, help="per shop; under 10,000: no bulk operation"
    )
    parser.add_argument("--samples", type=int, default=40, help="writes measured")
    parser.add_argument(
        "--viewers", type=int, default=1, help="signed-in sessions watching the page at once"
    )
    parser.add_argument("--browsers", type=int, help="chromium pages among the viewers (all)")
    parser.add_argument("--time-scale", type=float, default=20.0)
    parser.add_argument("--sandbox", choices=("mounted", "standalone"), default="mounted")
    parser.add_argument(
        "--database-url", default=None,
        help="a PostgreSQL server, where the bench makes a database of its own; default: SQLite",
    )
    args = parser.parse_args()
    browsers = args.viewers if args.browsers is None else args.browsers
    args.browsers = max(1, min(browsers, args.viewers))
    if args.page != "overview" and args.browsers < args.viewers:
        print("websocket-only viewers watch the Overview only: use --page overview")
        return 1
    if args.integrations is None:
        args.integrations = 10_000 if args.page == "integrations" else 0
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
        return 1
    # run_all and CI stop us with SIGTERM: unwind through the finally blocks (hub, browser).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    total_start = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="hub-live-bench-") as tmp,
        fresh_database(args.database_url) as database_url,
    ):
        if args.database_url:  # its own: another run's rows are sealed with another key
            args.database_url = database_url
        try:
            result = measure(args, Path(tmp))
        finally:
            db.reset_engines()
            os.chdir(ROOT)

    running = result["running"]
    print(f"page: {args.page}, {args.integrations + args.syncs + 1:,} integrations in all")
    print(
        f"hub: sandbox ({args.sandbox}) x{args.time_scale:g}, {args.syncs} Shopify product syncs "
        f"({args.products:,} products x 2 variants per shop); hub up in {result['boot']:.0f} s"
    )
    print(
        f"while measuring: {min(running)}-{max(running)} syncs running, the hub synced "
        f"{result['records']:,} records in {result['window']:.0f} s = "
        f"{result['records'] / result['window']:,.0f} records/s; load average "
        f"{result['load']:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{args.viewers} signed-in session(s) on the page ({args.browsers} in chromium, the "
        f"others websocket-only: their figure is the delta's arrival); hub CPU while measuring "
        f"{result['cpu']:.0f} s in {result['window']:.0f} s = "
        f"{result['cpu'] / result['window'] * 100:.0f} % of one core (all its processes)"
    )
    rows = (
        ("idle: write -> visible", result["idle"]),
        ("write -> visible", result["appear"]),
        ("  rendered in chromium", result["in_browser"]),
        ("revert -> gone", result["vanish"]),
        ("  the write itself", result["writes"]),
        ("commit -> visible", result["committed"]),
    )
    for label, all_values in rows:
        values = [value for value in all_values if value is not None]
        if values:
            print(
                f"{label:<23} n={len(values):<3} p50 {statistics.median(values) * 1000:>6,.0f} ms"
                f"  p95 {percentile(values, 0.95) * 1000:>6,.0f} ms"
                f"  max {max(values) * 1000:>6,.0f} ms"
            )
    if MISSED:
        print(
            f"MISSED: {len(MISSED)} page updates never shown within {MISSED_AFTER:.0f} s"
            f" (viewers {sorted(set(MISSED))}); the hub's log: {KEPT_LOG}"
        )
    print(
        f"goal: write -> visible p95 <= 1,000 ms with {args.syncs} syncs running "
        f"(whole bench {time.monotonic() - total_start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
