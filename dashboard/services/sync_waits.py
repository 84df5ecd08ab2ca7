"""Waiting for runs wherever they execute (``hub sync --wait``, tests): polls the database,
recovers runs of dead processes meanwhile and starts, in the waiting process, the runs
nobody else starts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from dashboard.db import in_session
from dashboard.services import sync
from dashboard.services.sync import SyncEngine
from dashboard.services.sync_queue import _active_among, _resumed_by


async def wait_finished(engine: SyncEngine, run_ids: list[uuid.UUID], *, poll: float = 0.5) -> None:
    """Wait until every run has ended, wherever it executes. Runs whose process died are
    recovered meanwhile (``interrupted``): a wait outlives a dead process by the staleness
    bound at most."""
    await engine.wait(run_ids)
    last_sweep = time.monotonic()
    while await in_session(lambda s: _active_among(s, run_ids)):
        await asyncio.sleep(poll)
        if time.monotonic() - last_sweep >= sync.RECOVERY_EVERY:
            last_sweep = time.monotonic()
            # Runs a dead process held go back to the queue; the waiting ones that nobody
            # started (no hub running, or a process that stopped) are started here.
            await engine.recover_interrupted(adopt=False)
            await engine.hold(run_ids)
        await engine.wait(run_ids)


async def wait_resumed(
    engine: SyncEngine,
    run_ids: list[uuid.UUID],
    *,
    on_resumed: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None,
    poll: float = 0.5,
) -> list[uuid.UUID]:
    """``wait_finished``, following a run that ends ``interrupted`` to the run that resumed
    its stream (``resumed_by``), and so on; the last run of each, in the order given.
    ``on_resumed(interrupted, resumed)`` at each step. A retry nobody starts is started
    here, like the runs handed to ``wait_finished``."""
    final, followed = list(run_ids), set(run_ids)
    while True:
        await wait_finished(engine, final, poll=poll)
        links = await in_session(partial(_resumed_by, run_ids=final))
        links = {old: new for old, new in links.items() if new not in followed}
        if not links:
            return final
        for old, new in links.items():
            followed.add(new)
            if on_resumed is not None:
                await on_resumed(old, new)
        final = [links.get(run_id, run_id) for run_id in final]
        await engine.hold(list(links.values()))
