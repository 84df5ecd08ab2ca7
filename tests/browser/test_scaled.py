"""The scaled configuration end to end: PostgreSQL, Reflex's state in Redis, three backend
workers, one scheduler holding the database lease, and one standalone sandbox that every
worker talks to (the sandbox mounted inside the hub would be one per worker).

The tests share one hub and tell one story in file order: an admin's session survives pages
and reloads served by different workers; a manager connects a shop through the wizard and its
records arrive; exactly one worker schedules, and no stream ever runs twice at once; a worker
killed with SIGKILL is replaced while the others keep answering, and syncs still complete.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Hub,
    hub_port,
    private_web_dir,
    require_chromium,
    running_hub,
    screenshot,
    sign_in,
)
from tests.conftest import PG_ADMIN_URL, postgres_available
from tests.sandbox_server import apps, sandbox_process

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
TIMEOUT = 30_000
WORKERS = 3
REDIS_URL = "redis://127.0.0.1:6379/7"  # a database index of this module's own, flushed
SHOP = "scaled-store.myshopify.com"
MANAGER = ("scaled-manager@example.com", "manager-password-1")
INTERVAL = timedelta(minutes=5)  # the wizard's shortest; the scheduler jitters by 10 %


@dataclass
class Scaled:
    hub: Hub
    sandbox: str  # base URL of the standalone sandbox
    db: sa.Engine
    redis: redis.Redis


def redis_unreachable() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
        return None
    except redis.RedisError as error:
        return f"Redis not reachable at {REDIS_URL}: {type(error).__name__}"


def psycopg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://")


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    require_chromium()
    for reason in (postgres_available(), redis_unreachable()):
        if reason:
            pytest.skip(reason)
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    name = f"hub_scaled_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(psycopg_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    engine = sa.create_engine(psycopg_url(database_url))
    try:
        port = hub_port()  # the hub's: the sandbox registers its callbacks
        with sandbox_process(time_scale=50, hub_port=port) as sandbox:
            env = {
                "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
                "GRANIAN_WORKERS": str(WORKERS),
                # One sandbox for every worker: the hub uses it like a platform (no mount).
                "HUB_SANDBOX": "false",
                "HUB_SHOPIFY_BASE_URL": f"{sandbox}/shopify",
                "HUB_AMAZON_BASE_URL": f"{sandbox}/amazon",
                "HUB_SHOPIFY_CLIENT_ID": "sandbox-shopify-client-id",
                "HUB_SHOPIFY_CLIENT_SECRET": apps(sandbox).shopify_client_secret,
                "HUB_PORT": str(port),
            }  # fmt: skip
            base_dir = tmp_path_factory.mktemp("scaled")
            web_dir = private_web_dir(base_dir)
            env["REFLEX_WEB_WORKDIR"] = str(web_dir)
            try:
                with running_hub(base_dir, env) as hub:
                    hub.cli("users", "create", "--email", MANAGER[0], "--role", "manager",
                            stdin=MANAGER[1] + "\n")  # fmt: skip
                    yield Scaled(hub=hub, sandbox=sandbox, db=engine, redis=store)
            finally:
                shutil.rmtree(web_dir, ignore_errors=True)  # 200+ MB; hub.log stays
    finally:
        engine.dispose()
        store.flushdb()
        store.close()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def backend_workers(serve_pid: int) -> list[int]:
    """The backend worker processes under ``hub serve``: forks of ``reflex run``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])

    def cmdline(pid: int) -> bytes:
        return Path(f"/proc/{pid}/cmdline").read_bytes()

    reflex = [pid for pid, parent in parents.items() if parent == serve_pid]
    return [
        pid
        for main in reflex
        for pid, parent in parents.items()
        if parent == main and cmdline(pid) == cmdline(main)
    ]


def test_admin_session_lives_in_redis_across_workers(scaled: Scaled, browser) -> None:
    assert len(backend_workers(scaled.hub.pid)) == WORKERS
    hub = scaled.hub
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_text("No integrations yet").wait_for(timeout=TIMEOUT)
    # Each reload opens a new websocket, which any of the workers may accept; the signed-in
    # user's email in the header comes from the state that worker reads from Redis.
    user_menu = page.get_by_role("button", name="User menu")
    for path in ("/integrations", "/runs", "/records", "/settings/users"):
        page.goto(f"{hub.url}{path}")
        for _ in range(2):
            expect(user_menu).to_contain_text(ADMIN_EMAIL, timeout=TIMEOUT)
            assert page.url.rstrip("/") == f"{hub.url}{path}", page.url  # not sent to /login
            page.reload()
    page.get_by_role("button", name="Add user").wait_for(timeout=TIMEOUT)
    screenshot(page, "scaled-admin-users")

    # A tab keeps its state across reloads (same client token): a search typed once is still
    # applied, whichever worker the reload reaches, because every worker reads it from Redis.
    page.goto(f"{hub.url}/integrations")
    page.get_by_label("Search integrations").fill("no-such-store")
    page.get_by_text("No integration matches").wait_for(timeout=TIMEOUT)
    for _ in range(4):
        page.reload()
        expect(user_menu).to_contain_text(ADMIN_EMAIL, timeout=TIMEOUT)
        page.get_by_text("No integration matches").wait_for(timeout=TIMEOUT)
        assert page.get_by_text("No integrations yet").count() == 0
    assert scaled.redis.dbsize() > 0  # the UI state is in Redis, not in a worker's memory
    context.close()


def test_manager_connects_a_shop_and_its_records_arrive(scaled: Scaled, browser) -> None:
    hub = scaled.hub
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, *MANAGER)
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill("Scaled store")
    page.get_by_label("Shop domain").fill(SHOP)
    page.get_by_role("button", name="Next").click()
    intervals = page.get_by_label("Interval in minutes")
    intervals.first.wait_for(timeout=TIMEOUT)
    for index in range(intervals.count()):
        intervals.nth(index).fill(str(INTERVAL.seconds // 60))
    page.get_by_role("button", name="Connect now").click()
    page.wait_for_url(f"{scaled.sandbox}/**", timeout=TIMEOUT)  # the standalone sandbox
    page.get_by_role("button", name="Install app").click()
    # The callback exchanges the code from whichever worker it reaches: one sandbox knows it.
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=TIMEOUT)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=TIMEOUT)
    page.get_by_role("tab", name="Runs").click()
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)
    screenshot(page, "scaled-integration-runs")
    page.goto(f"{hub.url}/records")
    page.get_by_text("gid://shopify/Product/").first.wait_for(timeout=TIMEOUT)
    screenshot(page, "scaled-records")
    context.close()


def runs_by_stream(db: sa.Engine) -> dict[str, list[sa.Row]]:
    with db.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT stream, trigger, status, worker, created_at, started_at, finished_at "
                "FROM sync_runs ORDER BY created_at"
            )
        ).all()
    streams: dict[str, list[sa.Row]] = {}
    for row in rows:
        streams.setdefault(row.stream, []).append(row)
    return streams


def test_one_worker_schedules_and_each_stream_runs_once_at_a_time(scaled: Scaled) -> None:
    # The wizard's shortest interval (5 minutes) would keep this test waiting for a second
    # fire: the operator's way round the wizard, the table, sets one minute. The lease holder
    # re-times the jobs on its next reconcile (10 s); each then fires within a minute (plus
    # its jitter), or at once if its first fire has not come yet.
    with scaled.db.begin() as connection:
        connection.execute(sa.text("UPDATE stream_configs SET interval_minutes = 1"))
    deadline = time.monotonic() + 150
    while True:
        streams = runs_by_stream(scaled.db)
        scheduled = {s for s, runs in streams.items() for r in runs if r.trigger == "schedule"}
        if streams and scheduled == set(streams):
            break
        assert time.monotonic() < deadline, f"scheduled runs only for {scheduled} of {streams}"
        time.sleep(1)

    with scaled.db.connect() as connection:
        leases = connection.execute(
            sa.text("SELECT holder, expires_at FROM scheduler_leases")
        ).all()
        jobs = connection.execute(sa.text("SELECT id FROM apscheduler_jobs")).scalars().all()
    assert len(leases) == 1, leases
    holder, expires_at = leases[0]
    assert expires_at > datetime.now(UTC)  # held and renewed
    workers = backend_workers(scaled.hub.pid)
    assert len(workers) == WORKERS
    assert int(holder.split(":")[1]) in workers  # hostname:pid:start:scope of one worker
    # The lease holder queued the scheduled runs; whichever worker had room ran each. Every
    # worker beats in hub_workers, so any of them can tell when another has died.
    ran_by = {  # a run the lease holder queued this very second has no worker yet
        r.worker for runs in streams.values() for r in runs
        if r.trigger == "schedule" and r.worker is not None
    }  # fmt: skip
    assert ran_by and {int(worker.split(":")[1]) for worker in ran_by} <= set(workers)
    with scaled.db.connect() as connection:
        beating = connection.execute(sa.text("SELECT id FROM hub_workers")).scalars().all()
    assert sorted(int(worker.split(":")[1]) for worker in beating) == sorted(workers)
    # One job per stream (id sync:{integration}:{stream}) in the one job store.
    assert sorted(job.rsplit(":", 1)[1] for job in jobs) == sorted(streams)

    # Whichever worker a request reached, a stream never had two runs at once, and its
    # scheduled runs are an interval apart (less the jitter): no worker scheduled beside
    # the lease holder.
    for stream, runs in runs_by_stream(scaled.db).items():
        for earlier, later in itertools.pairwise(runs):
            assert earlier.finished_at is not None, (stream, runs)
            assert later.started_at is None or later.started_at >= earlier.finished_at, (
                stream,
                runs,
            )
        scheduled_at = [r.created_at for r in runs if r.trigger == "schedule"]
        for earlier, later in itertools.pairwise(scheduled_at):
            assert later - earlier >= timedelta(minutes=1) * 0.8, (stream, scheduled_at)


def test_a_killed_worker_is_replaced_while_the_others_serve_and_syncs_complete(
    scaled: Scaled,
) -> None:
    """`kill -9` of the worker holding the scheduler lease: Granian respawns it (`hub serve`
    sets respawn_failed_workers), /api/ready never stops answering from the others, the lease
    moves on, and a sync asked for afterwards completes."""
    hub = scaled.hub
    before = backend_workers(hub.pid)
    assert len(before) == WORKERS
    with scaled.db.connect() as connection:
        holder = connection.execute(sa.text("SELECT holder FROM scheduler_leases")).scalar_one()
    victim = int(holder.split(":")[1])
    assert victim in before
    os.kill(victim, signal.SIGKILL)

    def probe() -> int:
        """What a load balancer sees: one retry of a connection that broke, as they all do.
        A connection the killed worker had already accepted dies with it; the kernel hands
        the retry to a live worker."""
        for attempt in range(2):
            try:
                return httpx.get(f"{hub.url}/api/ready", timeout=5).status_code
            except httpx.HTTPError as error:
                broken.append(f"{type(error).__name__} on attempt {attempt + 1}")
        return 0

    answers: list[int] = []
    broken: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers.append(probe())
        after = backend_workers(hub.pid)
        if len(after) == WORKERS and victim not in after and len(answers) >= 20:
            break
        time.sleep(0.25)
    after = backend_workers(hub.pid)
    assert victim not in after and len(after) == WORKERS, (before, after)
    # Every probe was answered by a live worker: none refused, none failed twice, and at most
    # the one connection racing the kill broke.
    assert answers and set(answers) == {200}, (answers, broken)
    assert len(broken) <= 1, broken

    with scaled.db.connect() as connection:
        integration = connection.execute(
            sa.text("SELECT id FROM integrations WHERE shop_domain = :shop"), {"shop": SHOP}
        ).scalar_one()
    queued = hub.cli("sync", str(integration), "--stream", "products")
    run_id = re.search(r"queued ([0-9a-f-]{36})", queued.stdout)
    assert run_id, queued.stdout
    deadline = time.monotonic() + 90
    while True:
        with scaled.db.connect() as connection:
            status, worker, waiting = connection.execute(
                sa.text("SELECT status, worker, waiting_reason FROM sync_runs WHERE id = :id"),
                {"id": run_id.group(1)},
            ).one()
            lease = connection.execute(sa.text("SELECT holder FROM scheduler_leases")).scalar()
        if status == "succeeded" and lease is not None and lease != holder:
            break
        # What the run waits for, if it says: the rate limit, a retry (the hub log has more).
        assert time.monotonic() < deadline, (status, worker, lease, waiting)
        time.sleep(1)
    assert int(worker.split(":")[1]) in backend_workers(hub.pid)
    # Nothing is left running under the killed worker's id.
    with scaled.db.connect() as connection:
        orphans = connection.execute(
            sa.text("SELECT count(*) FROM sync_runs WHERE status = 'running' AND worker = :w"),
            {"w": holder},
        ).scalar_one()
    assert orphans == 0
