"""The change feed of a bench process that writes what the hub's pages show.

A bench that writes rows directly stands for a hub process writing them, and every hub
process runs the change feed (``dashboard.services.changefeed``): its commits tell the other
processes at once. Without it, a PostgreSQL hub learns of the bench's write only at its
pages' fallback re-read (5 s), and the bench would measure that instead of the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def change_feed_running() -> Iterator[None]:
    """Run this process's change feed on a loop of its own thread while the block runs; the
    session events then publish this thread's commits as the hub's processes do."""
    from dashboard.services.changefeed import changefeed_lifespan

    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with changefeed_lifespan():
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(timeout=30):
        raise RuntimeError("the bench's change feed did not start")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
