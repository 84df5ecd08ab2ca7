"""Crash recovery, proven with real processes.

- At start-up every hub process turns the runs of dead processes into ``interrupted`` and
  resumes their streams from the checkpoint; a run of a live process is never touched.
- A process syncing a large stream is killed with SIGKILL at random points, again and
  again; the next process finishes the stream and the rows equal the source exactly.
- ``hub sync --wait`` killed mid-run and run again ends with the sandbox's ground truth, and
  reports each run's outcome in its exit code.
- ``hub sync --wait`` waiting for a hub's run whose hub is killed follows the retry to its end.

This file is also the child process of those tests: ``python -m tests.test_crash_recovery``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from connectors.base import StoredCredential
from connectors.sandbox.core import checksum
from connectors.shopify.client import _throttles
from dashboard.db import session_scope
from dashboard.models import Product, SchedulerLease, StreamConfig, SyncRun
from dashboard.services import sync
from dashboard.services.credentials import save_credential
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.lifespan import hub_lifespan
from dashboard.services.sync_waits import wait_finished
from tests.fake_connector import FakeConnector
from tests.sandbox_server import apps, control_headers, running_sandbox, shopify_install

ROOT = Path(__file__).resolve().parents[1]
STOPPED = "the process running it stopped; resumed from the last checkpoint"


@pytest.fixture
def fake_engine() -> Iterator[sync.SyncEngine]:
    engine = sync.SyncEngine(
        connector_factory=lambda _: FakeConnector(total=40, page_size=10), retry_delays=(0.01,)
    )
    sync.set_engine(engine)
    yield engine
    sync.set_engine(None)


def connected(name: str, streams: dict[str, int] | None = None) -> uuid.UUID:
    with session_scope() as s:
        integration = create_integration(
            session=s, platform="shopify", display_name=name,
            shop_domain=f"{name.lower()}.myshopify.com", streams=streams or {"products": 15},
        )  # fmt: skip
        mark_connected(session=s, integration_id=integration.id)
        return integration.id


def runs_of(integration_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as s:
        return list(
            s.exec(
                select(SyncRun)
                .where(SyncRun.integration_id == integration_id)
                .order_by(col(SyncRun.created_at))
            ).all()
        )


def child_env(**extra: str) -> dict[str, str]:
    """The test's hub settings (data dir, database) for a child process."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def dead_worker_id() -> str:
    """The worker id of a hub process that has ended (same host)."""
    child = subprocess.run(
        [sys.executable, "-c", "from dashboard.services.sync import worker_id; print(worker_id())"],
        capture_output=True, text=True, check=True, env=child_env(), timeout=60,
    )  # fmt: skip
    return child.stdout.strip()


# --- start-up recovery -------------------------------------------------------------------------


async def test_startup_recovers_runs_of_dead_processes_and_spares_live_ones(
    any_db: str, fake_engine: sync.SyncEngine
) -> None:
    streams = {"products": 15, "orders": 15, "customers": 15, "inventory": 15}
    integration_id = connected("Acme", streams)
    fresh, stale = datetime.now(UTC), datetime.now(UTC) - timedelta(minutes=3)
    another_engine_here = sync.SyncEngine(connector_factory=lambda _: FakeConnector())
    cases = {
        # stream: (worker, heartbeat, expected after start-up)
        "products": (dead_worker_id(), fresh, "interrupted"),  # SIGKILLed a second ago
        "orders": ("other-host:4242:1:abc", fresh, "running"),  # alive elsewhere
        "customers": ("other-host:4343:1:abc", stale, "interrupted"),  # silent for 3 min
        "inventory": (another_engine_here.worker, fresh, "running"),  # alive here
    }
    with session_scope() as s:
        for stream, (worker, beat, _) in cases.items():
            s.add(SyncRun(
                integration_id=integration_id, stream=stream, status="running", worker=worker,
                heartbeat_at=beat, started_at=beat,
            ))  # fmt: skip
    async with sync.engine_lifespan():
        after = {r.stream: r for r in runs_of(integration_id) if r.trigger != "retry"}
        assert {stream: run.status for stream, run in after.items()} == {
            stream: expected for stream, (_, _, expected) in cases.items()
        }
        assert after["products"].error == STOPPED
        assert after["orders"].heartbeat_at == fresh  # not even written
        retries = {r.stream: r for r in runs_of(integration_id) if r.trigger == "retry"}
        assert set(retries) == {"products", "customers"}  # each dead stream resumed, once
        # The two live runs are HUB_SYNC_PER_INTEGRATION (2): the retries wait their turn,
        # open to any process, until those end.
        assert {(r.status, r.worker) for r in retries.values()} == {("queued", None)}
        with session_scope() as s:
            for run in s.exec(select(SyncRun).where(SyncRun.status == "running")):
                run.status = "succeeded"
                s.add(run)
        deadline = asyncio.get_running_loop().time() + 20
        while {r.status for r in runs_of(integration_id) if r.trigger == "retry"} != {"succeeded"}:
            assert asyncio.get_running_loop().time() < deadline, "the retries never ran"
            await asyncio.sleep(0.1)
    retries = {r.stream: r for r in runs_of(integration_id) if r.trigger == "retry"}
    assert {r.worker for r in retries.values()} == {fake_engine.worker}


async def test_a_process_that_does_not_schedule_still_recovers(
    hub_db, fake_engine: sync.SyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SCHEDULER_ENABLED", "false")
    from dashboard.settings import get_settings

    get_settings.cache_clear()
    integration_id = connected("Worker")
    with session_scope() as s:  # a lease held by a live scheduler elsewhere
        s.add(SchedulerLease(
            name="scheduler", holder="elsewhere:1",
            expires_at=datetime.now(UTC) + timedelta(seconds=30),
        ))  # fmt: skip
        s.add(SyncRun(
            integration_id=integration_id, stream="products", status="running",
            worker=dead_worker_id(), heartbeat_at=datetime.now(UTC),
        ))  # fmt: skip
    async with hub_lifespan():
        await fake_engine.wait()
    old, retry = runs_of(integration_id)
    assert (old.status, old.error) == ("interrupted", STOPPED)
    assert (retry.trigger, retry.status, retry.records_read) == ("retry", "succeeded", 40)


async def test_an_orderly_stop_resumes_at_the_next_start(hub_db) -> None:
    integration_id = connected("Stopper")
    gate = asyncio.Event()
    slow = FakeConnector(total=40, page_size=10)

    async def hold(page: int) -> None:
        if page == 2:
            await gate.wait()

    slow.on_page = hold
    first = sync.SyncEngine(connector_factory=lambda _: slow)
    sync.set_engine(first)
    try:
        async with sync.engine_lifespan() as engine:
            [run_id] = await engine.request_sync(integration_id=integration_id)
            while runs_of(integration_id)[0].pages < 2:
                await asyncio.sleep(0.01)
        # A restart: the next process adopts the queued retry at once.
        sync.set_engine(sync.SyncEngine(connector_factory=lambda _: FakeConnector(total=40)))
        async with sync.engine_lifespan() as engine:
            await engine.wait()
    finally:
        sync.set_engine(None)
    stopped, resumed = runs_of(integration_id)
    assert stopped.id == run_id
    assert (stopped.status, stopped.records_read) == ("interrupted", 20)
    assert "the hub stopped" in (stopped.error or "")
    assert (resumed.trigger, resumed.status, resumed.cursor_before) == (
        "retry", "succeeded", {"next": 20},
    )  # fmt: skip


# --- SIGKILL at random points ------------------------------------------------------------------

TOTAL, PAGE = 8_000, 100


def stored_products(integration_id: uuid.UUID) -> dict[str, tuple[str, str | None]]:
    with session_scope() as s:
        rows = s.exec(
            select(Product.external_id, Product.title, Product.sku).where(
                Product.integration_id == integration_id
            )
        ).all()
        distinct = s.exec(
            select(func.count(sa.distinct(Product.external_id))).where(
                Product.integration_id == integration_id
            )
        ).one()
    assert distinct == len(rows), "duplicate rows"
    return {external_id: (title, sku) for external_id, title, sku in rows}


def checkpoint(integration_id: uuid.UUID) -> int:
    with session_scope() as s:
        config = s.exec(
            select(StreamConfig).where(StreamConfig.integration_id == integration_id)
        ).one()
        return int((config.cursor or {"next": 0})["next"])


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(any_db: str) -> None:
    integration_id = connected("Crashy")
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    kills = []
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.test_crash_recovery", str(integration_id)],
            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        start = checkpoint(integration_id)
        target = rng.randint(start + 2 * PAGE, start + (TOTAL - start) // 2)
        while checkpoint(integration_id) < target and child.poll() is None:
            await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0, 0.02))  # inside a transaction or between two
        child.send_signal(signal.SIGKILL)
        output = child.communicate(timeout=30)[0].decode()
        assert child.returncode == -signal.SIGKILL, f"seed {seed}: child ended early\n{output}"
        kills.append(checkpoint(integration_id))

    # A new engine starts (a restart of the hub) and finishes the stream.
    sync.set_engine(
        sync.SyncEngine(connector_factory=lambda _: FakeConnector(total=TOTAL, page_size=PAGE))
    )
    try:
        async with sync.engine_lifespan() as engine:
            await engine.wait()
    finally:
        sync.set_engine(None)

    expected = {f"p{i}": (f"Product {i}", f"SKU-{i}") for i in range(TOTAL)}
    assert stored_products(integration_id) == expected, f"seed {seed}, killed at {kills}"
    runs = runs_of(integration_id)
    assert [r.status for r in runs] == ["interrupted"] * 3 + ["succeeded"], f"seed {seed}"
    assert all(r.error == STOPPED for r in runs[:3])
    assert [r.trigger for r in runs] == ["manual", "retry", "retry", "retry"]
    # Each run resumed exactly where the previous one's last committed batch ended.
    for before, after in itertools.pairwise(runs):
        assert after.cursor_before == before.cursor_after, f"seed {seed}"
    assert sum(r.records_read for r in runs) == TOTAL  # nothing read twice into the tables
    assert sum(r.records_inserted for r in runs) == TOTAL


def _child_sync(integration_id: str) -> None:
    """A hub process syncing a large fake stream (killed by the test above)."""
    connector = FakeConnector(total=TOTAL, page_size=PAGE)

    async def pace(page: int) -> None:
        await asyncio.sleep(0.002)  # a platform answers in a few milliseconds

    connector.on_page = pace

    async def main() -> None:
        sync.set_engine(sync.SyncEngine(connector_factory=lambda _: connector))
        async with sync.engine_lifespan() as engine:  # start-up recovery of the last crash
            run_ids = await engine.request_sync(integration_id=integration_id)
            await wait_finished(engine, run_ids, poll=0.05)

    asyncio.run(main())


# --- `hub sync` against the sandbox ------------------------------------------------------------

SHOP = "crash-test.myshopify.com"


@pytest.fixture
def sandbox() -> Iterator[str]:
    _throttles.clear()
    with running_sandbox(seed=11, time_scale=200) as (base, _app):
        yield base
    _throttles.clear()


def sandbox_integration(session: Session, base: str, *, token: str | None = None, **sizes) -> str:
    httpx.post(
        f"{base}/_sandbox/shopify/shops",
        headers=control_headers(base),
        json={"shop": SHOP, **sizes},
    ).raise_for_status()
    integration = create_integration(
        session=session, platform="shopify", display_name="Crash Shop", shop_domain=SHOP,
        streams={"products": 15, "customers": 15},
    )  # fmt: skip
    token = token or shopify_install(base, SHOP, scopes="read_products,read_customers")
    save_credential(
        session=session,
        integration_id=integration.id,
        credential=StoredCredential("access_token", token, ["read_products", "read_customers"]),
    )
    mark_connected(session=session, integration_id=integration.id)
    session.commit()
    return str(integration.id)


def hub_command(*args: str, base: str) -> list[str]:
    return [sys.executable, "-m", "dashboard.cli", *args]


def hub_env_for(base: str) -> dict[str, str]:
    return child_env(
        HUB_SHOPIFY_BASE_URL=f"{base}/shopify",
        HUB_SHOPIFY_CLIENT_ID="sandbox-shopify-client-id",
        HUB_SHOPIFY_CLIENT_SECRET=apps(base).shopify_client_secret,
    )


def run_hub(*args: str, base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hub_command(*args, base=base), env=hub_env_for(base), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def stored_checksum(integration_id: str, table: type[Product]) -> dict[str, object]:
    with session_scope() as s:
        ids = s.exec(
            select(table.external_id).where(
                table.integration_id == uuid.UUID(integration_id), col(table.deleted_at).is_(None)
            )
        ).all()
    return {"count": len(ids), "checksum": checksum(ids)}


async def test_killed_hub_sync_run_again_equals_the_sandbox_truth(session, sandbox) -> None:
    integration_id = sandbox_integration(session, sandbox, products=1500, customers=10)
    killed = subprocess.Popen(
        hub_command("sync", integration_id, "--stream", "products", "--wait", base=sandbox),
        env=hub_env_for(sandbox), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    target = random.randint(200, 900)
    while killed.poll() is None:
        runs = runs_of(uuid.UUID(integration_id))
        if runs and runs[0].records_read >= target:
            break
        await asyncio.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    output = killed.communicate(timeout=30)[0].decode()
    assert killed.returncode == -signal.SIGKILL, f"finished before the kill:\n{output}"

    again = run_hub("sync", integration_id, "--stream", "products", "--wait", base=sandbox)
    assert again.returncode == 0, again.stdout + again.stderr
    old, resumed = runs_of(uuid.UUID(integration_id))
    assert (old.status, old.error) == ("interrupted", STOPPED)
    assert resumed.trigger == "retry" and resumed.cursor_before == old.cursor_after
    assert f"products     succeeded   read={resumed.records_read} " in again.stdout
    truth = httpx.get(
        f"{sandbox}/_sandbox/shopify/shops/{SHOP}/truth", headers=control_headers(sandbox)
    ).json()["streams"]
    assert stored_checksum(integration_id, Product) == truth["products"]


async def test_hub_sync_wait_prints_each_outcome_and_fails_when_a_run_fails(
    session, sandbox
) -> None:
    integration_id = sandbox_integration(session, sandbox, products=5, token="shpat_revoked")
    result = run_hub("sync", integration_id, "--wait", base=sandbox)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("queued ")]
    assert [line.split()[:2] for line in lines] == [
        ["products", "failed"], ["customers", "failed"],
    ]  # fmt: skip
    assert "reconnect the integration" in lines[0]
    listed = json.loads(run_hub("runs", "list", "--json", base=sandbox).stdout)
    assert {(r["stream"], r["status"]) for r in listed} == {
        ("products", "failed"), ("customers", "failed"),
    }  # fmt: skip
    assert {r["integration_id"] for r in listed} == {integration_id}
    refused = run_hub("sync", integration_id, base=sandbox)  # now needs reauth
    assert refused.returncode == 2 and "connect it before syncing" in refused.stderr


async def test_hub_sync_wait_follows_the_retry_when_the_hub_running_the_run_dies(
    session, sandbox
) -> None:
    """`hub sync --wait` waits for the run a hub executes; the hub is SIGKILLed and
    restarted. The command reports the interruption, follows the retry that resumes the
    stream to its end, and exits 0; the rows equal the sandbox's."""
    integration_id = sandbox_integration(session, sandbox, products=1500, customers=10)
    faults = f"{sandbox}/_sandbox/faults/shopify/{SHOP}"
    httpx.put(
        faults, headers=control_headers(sandbox), json={"slow_rate": 1.0, "slow_seconds": 100}
    ).raise_for_status()  # 0.5 s
    hub = subprocess.Popen(
        [sys.executable, "-m", "tests.test_crash_recovery", "hub", integration_id, "products"],
        env=hub_env_for(sandbox), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    restarted = None
    try:
        while not (runs := runs_of(uuid.UUID(integration_id))) or runs[0].records_read == 0:
            assert hub.poll() is None, "the hub stopped"
            await asyncio.sleep(0.02)
        [run] = runs
        waiting = subprocess.Popen(
            hub_command("sync", integration_id, "--stream", "products", "--wait", base=sandbox),
            env=hub_env_for(sandbox), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert waiting.stdout is not None
        queued = await asyncio.to_thread(waiting.stdout.readline)
        assert queued.strip() == f"queued {run.id}"  # the hub's run: the command waits for it
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=30)
        httpx.put(faults, headers=control_headers(sandbox), json={}).raise_for_status()
        restarted = subprocess.Popen(
            [sys.executable, "-m", "tests.test_crash_recovery", "hub", integration_id],
            env=hub_env_for(sandbox), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        output = (await asyncio.to_thread(waiting.communicate, timeout=240))[0]
    finally:
        for process in (hub, restarted):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert waiting.returncode == 0, output
    old, retry = runs_of(uuid.UUID(integration_id))
    assert (old.status, old.error, old.resumed_by) == ("interrupted", STOPPED, retry.id)
    assert (retry.trigger, retry.status) == ("retry", "succeeded")
    assert retry.cursor_before == old.cursor_after
    lines = [line for line in output.splitlines() if line.startswith(" ") or "read=" in line]
    assert lines == [
        f"products     interrupted read={old.records_read} inserted={old.records_inserted} "
        f"updated=0 deleted=0 skipped=0  {STOPPED}",
        f"{'':12} resumed by run {retry.id}; waiting for it",
        f"products     succeeded   read={retry.records_read} inserted={retry.records_inserted} "
        f"updated={retry.records_updated} deleted=0 skipped=0",
    ], output
    truth = httpx.get(
        f"{sandbox}/_sandbox/shopify/shops/{SHOP}/truth", headers=control_headers(sandbox)
    ).json()["streams"]
    assert stored_checksum(integration_id, Product) == truth["products"]


def test_hub_sync_without_wait_hands_the_runs_to_the_running_hub(session, sandbox) -> None:
    integration_id = sandbox_integration(session, sandbox, products=5)
    session.add(SchedulerLease(
        name="scheduler", holder="hub-host:77",
        expires_at=datetime.now(UTC) + timedelta(seconds=30),
    ))  # fmt: skip
    session.commit()
    result = run_hub("sync", integration_id, "--stream", "products", base=sandbox)
    assert result.returncode == 0, result.stderr
    assert "the running hub (hub-host:77) starts them" in result.stdout
    [run] = runs_of(uuid.UUID(integration_id))
    assert (run.status, run.worker) == ("queued", None)  # any hub process adopts it


def _child_hub(integration_id: str, stream: str | None) -> None:
    """A hub process with the real connectors (the sandbox's settings come from the
    environment): recovery at start-up, then syncs `stream` if given, until killed."""

    async def main() -> None:
        async with sync.engine_lifespan() as engine:
            if stream:
                await engine.request_sync(integration_id=integration_id, stream=stream)
            await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1] == "hub":
        _child_hub(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        _child_sync(sys.argv[1])
