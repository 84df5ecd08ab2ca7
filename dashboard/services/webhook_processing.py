"""Applying stored webhook events: a bounded queue, a fixed number of consumers taking
events in batches, and one fetch for many events about the same record.

The webhook route stores an event, answers 200 and submits the event here; a process applies
at most ``HUB_WEBHOOK_CONCURRENCY`` batches of at most ``BATCH`` events at once, whatever the
burst, so a burst neither opens a connection per event nor starves the event loop, and the
database sees one claim and one outcome transaction per batch, not per event. Answers come
first: while deliveries keep arriving, one consumer applies and the others wait until none
has come for ``QUIET_FOR`` seconds. Measured (bench/webhook_ingest.py, 700/s on 2 CPUs),
eight batches applying at once took the GIL from the route: answers p50 61 ms instead of
21 ms with one, which still kept up. An event the
queue has no room for stays stored, unapplied: the recovery sweep
(``shopify_webhooks.recover_events``) takes it after its grace period, in this or another
process. A process killed meanwhile loses nothing either: the sweep takes every stored event
no live process applies.

Shopify sends a burst of ``products/update`` for one product (each variant edit, inventory,
a bulk edit). ``RecordRefreshes`` lets the events about one record share a fetch (and its
upsert): an event joins a fetch that started after the event was received (it reads a state
at least as new as the event's), otherwise the one fetch queued behind the running one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dashboard.logging_setup import detached_log_context

log = logging.getLogger("hub.shopify.webhooks")

QUEUE_CAPACITY = 10_000  # events waiting in one process; beyond, the sweep takes them
BATCH = 50  # events a consumer takes at once: what is queued, up to this many
QUIET_FOR = 0.1  # seconds without a delivery before the consumers beyond the first apply
GRACE_SECONDS = 30  # an event unapplied this long is the recovery sweep's (any process's)

Apply = Callable[[list[uuid.UUID]], Awaitable[None]]


class WebhookProcessor:
    """A queue of stored event ids and ``consumers`` tasks applying them with ``apply``, each
    taking what is queued (up to ``batch`` events) at once."""

    def __init__(
        self,
        apply: Apply,
        *,
        consumers: int,
        capacity: int = QUEUE_CAPACITY,
        batch: int = BATCH,
        quiet: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.apply = apply
        self.quiet = quiet  # returns once the intake is quiet: when consumers beyond one apply
        self.consumers = consumers
        self.batch = batch
        self.queue: asyncio.Queue[tuple[uuid.UUID, asyncio.Future[None]]] = asyncio.Queue(capacity)
        self._tasks: list[asyncio.Task[None]] = []
        self.applied = 0
        self.batches = 0
        self.overflowed = 0
        self._left = 0  # events left to the sweep since the queue was last half empty

    def submit(self, event_id: uuid.UUID) -> asyncio.Future[None] | None:
        """Queue the event; a future done once it was applied (or its attempt ended), None
        when the queue is full (the recovery sweep applies it later)."""
        if not self._tasks:
            self._start()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((event_id, done))
        except asyncio.QueueFull:
            self.overflowed += 1
            self._left += 1
            if self._left == 1:  # once per overflow: a burst would log thousands of lines
                log.warning(
                    "webhook queue full (%d events waiting): the events arriving now stay "
                    "stored for the recovery sweep, which applies them after %d s",
                    self.queue.maxsize, GRACE_SECONDS,
                )  # fmt: skip
            return None
        # Once half empty, not at the first free slot: at the brim each batch taken frees
        # room for a moment, and the queue would flip between full and not many times a second.
        if self._left and self.queue.qsize() <= self.queue.maxsize // 2:
            log.warning("webhook queue has room again; %d events were left for the recovery "
                        "sweep", self._left)  # fmt: skip
            self._left = 0
        return done

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(
                self._consume(first=n == 0),
                name=f"webhook-consumer-{n}",
                context=detached_log_context(),  # they serve every request, not the first
            )
            for n in range(self.consumers)
        ]

    async def _consume(self, *, first: bool) -> None:
        while True:
            if not first and self.quiet is not None:
                await self.quiet()
            taken = [await self.queue.get()]
            while len(taken) < self.batch and not self.queue.empty():
                taken.append(self.queue.get_nowait())
            try:
                await self.apply([event_id for event_id, _ in taken])
            except asyncio.CancelledError:
                for _, done in taken:
                    done.cancel()
                raise
            except Exception:  # the attempts record their own failures; this is a bug
                log.exception("webhook events %s: applying them crashed", [e for e, _ in taken])
            finally:
                for _ in taken:
                    self.queue.task_done()
            self.applied += len(taken)
            self.batches += 1
            for _, done in taken:
                if not done.done():
                    done.set_result(None)

    async def stop(self) -> None:
        """Stop the consumers: the event each applies is handed back (its attempt's
        cancellation handler); the queued ones stay stored for the next process's sweep."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks = []
        while not self.queue.empty():
            _, done = self.queue.get_nowait()
            done.cancel()


_processors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WebhookProcessor] = (
    weakref.WeakKeyDictionary()
)


def processor(
    apply: Apply, consumers: int, quiet: Callable[[], Awaitable[None]] | None = None
) -> WebhookProcessor:
    """The running event loop's processor (one per process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    found = _processors.get(loop)
    if found is None:
        found = _processors[loop] = WebhookProcessor(apply, consumers=consumers, quiet=quiet)
    return found


async def stop_processor() -> None:
    """Stop the running loop's consumers, then the record fetches they started."""
    loop = asyncio.get_running_loop()
    found = _processors.pop(loop, None)
    if found is not None:
        await found.stop()
    refreshes = _refreshes.pop(loop, None)
    if refreshes is not None:
        await refreshes.stop()


# --- one fetch for the events about one record -----------------------------------------------


@dataclass
class _Refresh:
    future: asyncio.Future[Any]
    started_at: datetime | None = None  # None: queued behind the running one


@dataclass
class RecordRefreshes:
    """Refreshes of records (fetch and store), shared by the events about the same record."""

    running: dict[Hashable, _Refresh] = field(default_factory=dict)
    queued: dict[Hashable, _Refresh] = field(default_factory=dict)
    fetches: int = 0
    joined: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def refresh(
        self, record: Hashable, received_at: datetime, work: Callable[[], Awaitable[Any]]
    ) -> Any:
        """``work()``'s result for an event about ``record`` received at ``received_at``:
        from a run that started after it, shared with the other events it serves."""
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        running = self.running.get(record)
        if running is not None and running.started_at and running.started_at >= received_at:
            share = running
            self.joined += 1
        elif running is None:
            share = self._run(record, work)
        elif (queued := self.queued.get(record)) is not None:
            share = queued  # the running fetch may predate the event: the next one serves it
            self.joined += 1
        else:
            share = self._queue(record, running, work)
        # Shielded: one event's attempt cancelled (its process stops) stops no other's.
        return await asyncio.shield(share.future)

    def _run(self, record: Hashable, work: Callable[[], Awaitable[Any]]) -> _Refresh:
        refresh = _Refresh(asyncio.get_running_loop().create_future(), datetime.now(UTC))
        self.running[record] = refresh
        self._spawn(self._execute(record, refresh, work))
        return refresh

    def _queue(
        self, record: Hashable, running: _Refresh, work: Callable[[], Awaitable[Any]]
    ) -> _Refresh:
        refresh = _Refresh(asyncio.get_running_loop().create_future())
        self.queued[record] = refresh

        async def after_running() -> None:
            await asyncio.wait([running.future])
            self.queued.pop(record, None)
            refresh.started_at = datetime.now(UTC)
            self.running[record] = refresh
            await self._execute(record, refresh, work)

        self._spawn(after_running())
        return refresh

    async def stop(self) -> None:
        """Cancel the fetches still running or queued (the process stops; their events are
        handed back by their attempts)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(
        self, record: Hashable, refresh: _Refresh, work: Callable[[], Awaitable[Any]]
    ) -> None:
        self.fetches += 1
        try:
            result = await work()
        except asyncio.CancelledError:
            refresh.future.cancel()
            raise
        except Exception as error:  # every waiting event gets the same outcome
            if not refresh.future.done():
                refresh.future.set_exception(error)
                refresh.future.exception()  # retrieved: nobody else may be waiting
        else:
            if not refresh.future.done():
                refresh.future.set_result(result)
        finally:
            if self.running.get(record) is refresh:
                del self.running[record]


_refreshes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RecordRefreshes] = (
    weakref.WeakKeyDictionary()
)


def record_refreshes() -> RecordRefreshes:
    """The running event loop's record refreshes."""
    loop = asyncio.get_running_loop()
    found = _refreshes.get(loop)
    if found is None:
        found = _refreshes[loop] = RecordRefreshes()
    return found
