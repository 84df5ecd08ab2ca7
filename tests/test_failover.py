"""Failure of a host, with real processes on PostgreSQL: two `hub worker`s with their own
host ids (HUB_WORKER_HOST). The one holding the scheduler lease and syncing is killed with
SIGKILL mid-run; the other notices by its silence in ``hub_workers`` and takes over the lease
and the run within 30 s, resuming from the checkpoint: the stored rows equal the sandbox's,
none lost, none inserted twice. A busy process is not taken for dead: its beat does not wait
for its database threads. Skipped with the reason when PostgreSQL is not reachable."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dashboard.db import in_session, session_scope
from dashboard.models import HubWorker, Product
from dashboard.services import sync
from dashboard.services.sync_supervisor import beat_while_alive
from dashboard.services.sync_workers import WORKER_DEAD_AFTER
from tests.sandbox_server import control_headers
from tests.test_crash_recovery import (
    SHOP,
    STOPPED,
    hub_env_for,
    runs_of,
    sandbox,
    sandbox_integration,
    stored_checksum,
)

pytestmark = pytest.mark.postgres
TAKEOVER = timedelta(seconds=30)
__all__ = ["sandbox"]  # the fixture, imported for this module's tests


def hub_worker(base: str, host: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "worker"],
        env=hub_env_for(base) | {"HUB_WORKER_HOST": host},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def query(sql: str, **params: Any) -> list[sa.Row[Any]]:
    with session_scope() as session:
        return list(session.execute(sa.text(sql), params).all())


async def until(what: str, check: Any, *, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        await asyncio.sleep(0.1)
    return value


async def test_a_host_killed_mid_sync_is_taken_over_within_30_s_losing_nothing(
    pg_hub_db, sandbox, workers
) -> None:
    with session_scope() as session:
        integration_id = sandbox_integration(session, sandbox, products=1500, customers=10)
    faults = f"{sandbox}/_sandbox/faults/shopify/{SHOP}"
    httpx.put(  # 0.5 s a request: the products run is still reading when host-a dies
        faults, headers=control_headers(sandbox), json={"slow_rate": 1.0, "slow_seconds": 100}
    ).raise_for_status()

    workers.append(host_a := hub_worker(sandbox, "host-a"))
    # host-a takes the lease; its scheduler queues each new stream within seconds, and
    # host-a (alone) claims and runs them.
    lease_of_a = "SELECT holder FROM scheduler_leases WHERE holder LIKE 'host-a:%'"
    await until("host-a holds the lease", lambda: query(lease_of_a), seconds=60)
    [run] = await until(
        "host-a reads products",
        lambda: [r for r in runs_of(uuid.UUID(integration_id))
                 if r.stream == "products" and r.records_read > 0],
        seconds=60,
    )  # fmt: skip
    assert run.trigger == "schedule" and run.worker.startswith("host-a:")
    workers.append(hub_worker(sandbox, "host-b"))
    beats_of_b = "SELECT id FROM hub_workers WHERE host = 'host-b'"
    await until("host-b beats", lambda: query(beats_of_b), seconds=60)

    host_a.send_signal(signal.SIGKILL)
    host_a.wait(timeout=30)
    killed_at = datetime.now(UTC)
    httpx.put(faults, headers=control_headers(sandbox), json={}).raise_for_status()

    def taken_over() -> list[sa.Row[Any]]:
        return query(
            "SELECT holder, acquired_at FROM scheduler_leases WHERE holder LIKE 'host-b:%'"
        )

    [(holder, acquired_at)] = await until("host-b takes the lease", taken_over, seconds=60)
    [old] = await until(
        "the run is resumed",
        lambda: [r for r in runs_of(uuid.UUID(integration_id))
                 if r.id == run.id and r.resumed_by is not None],
        seconds=60,
    )  # fmt: skip
    [retry] = await until(
        "the retry succeeds",
        lambda: [r for r in runs_of(uuid.UUID(integration_id))
                 if r.id == old.resumed_by and r.status == "succeeded"],
        seconds=120,
    )  # fmt: skip

    # Within seconds of the kill: the lease (its acquired_at says when) and the run.
    print(
        f"after the kill: lease taken in {(acquired_at - killed_at).total_seconds():.1f} s, "
        f"run interrupted in {(old.finished_at - killed_at).total_seconds():.1f} s, "
        f"resumed in {(retry.started_at - killed_at).total_seconds():.1f} s"
    )
    assert acquired_at - killed_at <= TAKEOVER, acquired_at - killed_at
    assert old.finished_at - killed_at <= TAKEOVER, old.finished_at - killed_at
    assert retry.started_at - killed_at <= TAKEOVER, retry.started_at - killed_at
    assert (old.status, old.error) == ("interrupted", STOPPED)
    assert (retry.trigger, retry.worker) == ("retry", holder)
    # Resumed from the checkpoint, not from the start; every record stored exactly once.
    assert retry.cursor_before == old.cursor_after and old.cursor_after is not None
    truth = httpx.get(
        f"{sandbox}/_sandbox/shopify/shops/{SHOP}/truth", headers=control_headers(sandbox)
    ).json()["streams"]
    assert stored_checksum(integration_id, Product) == truth["products"]
    # Each record (products and their variants) read once and inserted once: nothing read
    # again after the resume (it would count as updated), nothing skipped.
    assert old.records_inserted + retry.records_inserted == old.records_read + retry.records_read
    assert (retry.records_updated, retry.records_skipped) == (0, 0)
    # host-a is gone from the live workers; host-b is the one left.
    live = query("SELECT host FROM hub_workers WHERE heartbeat_at > now() - interval '15 s'")
    assert [row.host for row in live] == ["host-b"]


async def test_a_busy_process_s_liveness_beat_does_not_wait_for_its_database_threads(
    pg_hub_db: Any,
) -> None:
    """Every shared database thread of a process busy (a hundred runs' page writes under
    load): its beat in ``hub_workers`` still lands at once, so the other processes do not
    take it for dead and resume its runs."""
    engine = sync.SyncEngine(max_concurrency=1)
    engine.worker = "busy-host:1"
    release = threading.Event()
    busy = [asyncio.ensure_future(in_session(lambda _: release.wait(20))) for _ in range(40)]
    stop = asyncio.Event()
    beating = asyncio.ensure_future(beat_while_alive(engine, stop, kind="worker"))
    try:
        deadline = time.monotonic() + WORKER_DEAD_AFTER.total_seconds() / 3
        while time.monotonic() < deadline and not beaten(engine.worker):
            await asyncio.sleep(0.05)
        assert beaten(engine.worker), "the beat waited for the busy database threads"
        assert not any(job.done() for job in busy)  # they were all still busy meanwhile
    finally:
        release.set()
        stop.set()
        await asyncio.gather(beating, *busy)


def beaten(worker: str) -> bool:
    with session_scope() as s:
        return s.get(HubWorker, worker) is not None
