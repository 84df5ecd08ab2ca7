"""The sync engine's life in a hub process: liveness beats in ``hub_workers``, claiming queued
runs when the change feed (or a run ending here) says there may be one, sweeps for runs of dead
processes, and the periodic incident sweeps. The intervals are ``sync``'s constants, read at
each use (tests shrink them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from functools import partial

from sqlmodel import Session

from dashboard.db import get_engine, in_own_session, in_write_session
from dashboard.services import (
    amazon_lifecycle,
    change_feed,
    incident_sweeps,
    sign_in_throttle,
    sync,
)
from dashboard.services.changefeed import QUEUE, get_feed
from dashboard.services.sync import SyncEngine
from dashboard.services.sync_workers import WORKER_BEAT_EVERY, beat, forget, prune_dead_workers

log = logging.getLogger("hub.sync")


async def supervise(engine: SyncEngine, stop: asyncio.Event) -> None:
    """Until ``stop``: claim queued runs whenever the change feed says one was queued (in
    any process), a run here ended, or ``HANDOVER_EVERY`` seconds passed; every
    ``RECOVERY_EVERY`` seconds sweep for runs of dead processes; every
    ``HOUSEKEEPING_EVERY`` seconds the incident sweeps; every ``PURGE_EVERY`` seconds (and
    at the first housekeeping) the change feed's expired tombstones."""
    feed = get_feed()
    seen = feed.version(QUEUE)
    swept = housekept = time.monotonic()
    purged = -math.inf
    engine.supervised = True
    try:
        while not stop.is_set():
            seen = await _next_look(engine, stop, seen)
            if stop.is_set():
                return
            now = time.monotonic()
            sweep, housekeeping = (
                now - swept >= sync.RECOVERY_EVERY, now - housekept >= sync.HOUSEKEEPING_EVERY
            )  # fmt: skip
            swept, housekept = (now if sweep else swept), (now if housekeeping else housekept)
            purge = housekeeping and now - purged >= sync.PURGE_EVERY
            purged = now if purge else purged
            await _supervise_step(engine, sweep=sweep, housekeeping=housekeeping, purge=purge)
    finally:
        engine.supervised = False


async def _next_look(engine: SyncEngine, stop: asyncio.Event, seen: int) -> int:
    """Wait for a run queued anywhere, room here, a stop, or ``HANDOVER_EVERY`` seconds;
    returns the queue's version now."""
    engine.room.clear()
    waits = {
        asyncio.ensure_future(get_feed().wait(QUEUE, seen, at_most=sync.HANDOVER_EVERY)),
        asyncio.ensure_future(engine.room.wait()),
        asyncio.ensure_future(stop.wait()),
    }
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in pending:
        waiting.cancel()
    return get_feed().version(QUEUE)


async def _supervise_step(
    engine: SyncEngine, *, sweep: bool, housekeeping: bool, purge: bool = False
) -> None:
    try:
        if sweep:  # first: what it hands back to the queue is claimed just below
            await engine.recover_interrupted()
        await engine.claim()
        if housekeeping:
            # Connect links that expired unused become an incident (once).
            await in_write_session(lambda s: incident_sweeps.sweep_expired_links(session=s))
            # Shopify refresh tokens near their 90 days without a refresh, and those
            # refreshed since (resolved).
            await in_write_session(
                lambda s: incident_sweeps.sweep_expiring_refresh_tokens(session=s)
            )
            # Amazon's LWA secret (180 days) and sellers' yearly authorizations.
            await in_write_session(lambda s: amazon_lifecycle.sweep(session=s))
            # Ended sign-in throttle windows; rows of processes dead for long.
            await in_write_session(lambda s: sign_in_throttle.prune_sign_in_throttles(session=s))
            await in_write_session(prune_dead_workers)
        if purge:
            await change_feed.purge_expired_tombstones()
    except Exception:  # a database hiccup must not end crash recovery for good
        log.exception("crash recovery sweep failed; retrying")


async def beat_while_alive(engine: SyncEngine, stop: asyncio.Event, *, kind: str) -> None:
    """Until ``stop``, every ``WORKER_BEAT_EVERY`` seconds: this process is alive (its row
    in ``hub_workers``); at the end, an orderly stop removes the row."""
    while not stop.is_set():
        try:
            await _liveness_write(
                partial(
                    beat, worker=engine.worker, kind=kind, capacity=engine.capacity,
                    running=len(engine._tasks),
                )
            )  # fmt: skip
        except Exception:  # the next beat tries again; silence for long means dead
            log.warning("worker heartbeat failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=WORKER_BEAT_EVERY)
    with contextlib.suppress(Exception):
        await in_write_session(partial(forget, worker=engine.worker))


async def _liveness_write(fn: Callable[[Session], None]) -> None:
    """A beat on PostgreSQL takes a database thread of its own: queued behind a busy
    process's run writes it could come later than ``WORKER_DEAD_AFTER``, and the other
    processes would take a live process for dead and resume its runs. SQLite has one
    writer; there it queues with the rest."""
    if get_engine().dialect.name == "sqlite":
        await in_write_session(fn)
    else:
        await in_own_session("liveness", fn)


@contextlib.asynccontextmanager
async def engine_lifespan(*, kind: str = "web") -> AsyncIterator[SyncEngine]:
    """The engine of a hub process (``kind``: a web worker or a ``hub worker``): liveness
    beats, crash recovery at start-up and every ``RECOVERY_EVERY`` seconds (in every process,
    lease or not), queued runs claimed as they come, and an orderly stop at shutdown."""
    engine = sync.get_engine()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    beating = loop.create_task(beat_while_alive(engine, stop, kind=kind))
    try:
        await engine.recover_interrupted()
        await engine.claim()  # this process's share of what waits, at once
    except Exception:  # serve anyway; the periodic sweep tries again
        log.exception("crash recovery at start-up failed")
    supervisor = loop.create_task(supervise(engine, stop))
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait([supervisor], timeout=5)
        await engine.stop()
        await asyncio.wait([beating], timeout=5)
