"""Live updates: one background event per open page re-reads its rows when the process's
change feed (``services.changefeed``: any committed write of the rows pages show, in this
process or another) says something changed, at most every ``MIN_INTERVAL_SECONDS`` and at
least every ``FALLBACK_SECONDS``. An idle hub reads nothing per page beyond that fallback.

The page starts its watcher on mount and stops it on unmount; the loop holds the state lock
only to swap the rows in, never while the database is read. A live page's state mixes in
``LiveState`` (its ``watching`` field and the ``watch`` / ``stop_watching`` handlers, which
Reflex copies onto each state that mixes it in) and defines ``fetch`` and ``apply``.

``watching`` is 0 when no loop runs, else the id of the one loop that may: leaving a page and
coming back within a second starts a new loop, and the old one, the next time it enters the
state (a read with something new, or RECHECK_SECONDS later), sees a different id and ends, so a
tab never accumulates loops. Only a signed-in viewer may start one, and a tick
checks the session (one indexed lookup) when the change feed says users or sessions were
written, and every SESSION_CHECK_SECONDS: sign-out, a disabled account or a password reset
stops the stream within a tick, an expired session within that, and the tab goes to the
login page.

A closed tab never unmounts its page, and Reflex keeps a background event running after its
client has gone. So while the tab's websocket is not connected the loop reads nothing and sends
nothing, and it ends once the tab has been away for ABANDONED_SECONDS. A tab that reconnects
sooner (a network blip, a sleeping laptop) finds its page live again: Reflex does not remount
it on reconnecting. The loop never writes the state of a tab that is away: every write sends a
delta, and Reflex logs "Attempting to send delta to disconnected client" for each one. So an
abandoned loop ends without resetting ``watching``; this process's own record of the loops it
runs (``_RUNNING``) tells a new ``watch`` that the id left behind is no longer live.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import reflex as rx

from dashboard import routes
from dashboard.models import Role
from dashboard.services.changefeed import LIVE, SESSIONS, get_feed
from dashboard.state.guard import public, requires

# A change shows within one notification, one read and one render: "database write ->
# visible" well under the 1 s goal. While syncs write batches after batches, a page re-reads
# at most every MIN_INTERVAL_SECONDS; with no notification at all (one lost, a write outside
# the hub's sessions), every FALLBACK_SECONDS.
MIN_INTERVAL_SECONDS = 0.5
# The Overview, whose one read serves every open tab (``shared_read``), re-reads twice as
# often: that costs one read per process, not one per tab. (The bell, shared too but on every
# page beside the page's own loop, keeps MIN_INTERVAL_SECONDS.) Measured with 50 sessions
# on the Overview and 20 syncs: write -> visible p95 0.54-0.58 s against 0.74-0.80 s on
# PostgreSQL, the hub's CPU unchanged (bench/live_latency.py).
SHARED_MIN_INTERVAL_SECONDS = 0.25
FALLBACK_SECONDS = 5.0
# How long a loop whose reads bring nothing new goes without entering its state, where it
# sees that its page has left (``watching`` changed): such a loop ends within this.
RECHECK_SECONDS = 5.0
_NOTHING_YET = object()
# How often a page checks its session when nothing said users or sessions changed.
SESSION_CHECK_SECONDS = 15.0
# While the tab is away: how often the loop looks whether it came back.
POLL_SECONDS = 0.5
# How long a loop waits for its tab to reconnect before it ends.
ABANDONED_SECONDS = 300.0
# Ids of the loops running in this process.
_RUNNING: set[int] = set()
# After a failed read (the database restarting, a connection it closed), the page keeps what
# it shows and reads again this much later.
RETRY_READ_SECONDS = 2.0

log = logging.getLogger(__name__)


class LivePage(Protocol):
    watching: int
    router: Any
    min_interval: float

    async def current_user(self) -> Any: ...

    async def fetch(self) -> Any: ...

    def apply(self, data: Any) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *args: Any) -> Any: ...


async def live_loop(state: LivePage) -> bool:
    """Body of a live state's background ``watch`` event; True when it ended because the
    session did (signed out elsewhere, disabled, password reset, expired) and the tab, still
    connected, goes to the login page."""
    async with state:
        if state.watching in _RUNNING:
            return False  # already watching in another task of this tab
        # Random, not a counter: with several workers the tab's state is shared through Redis.
        # An id that is not running here (its loop ended with its tab away, or it runs on
        # another worker, which ends it on its next tick) is simply replaced.
        loop_id = state.watching = secrets.randbelow(2**48) + 1
        tab = _client_token(state)
    _RUNNING.add(loop_id)
    try:
        return await _watch(state, loop_id, tab)
    finally:
        _RUNNING.discard(loop_id)


async def _watch(state: LivePage, loop_id: int, tab: str | None) -> bool:
    away_since: float | None = None
    feed = get_feed()
    sessions_seen, checked_at = -1, -SESSION_CHECK_SECONDS
    applied: object = _NOTHING_YET  # the read this loop last applied, and when
    failing = False  # the last read failed
    entered_at = time.monotonic()
    while True:
        began = time.monotonic()
        if not await _tab_connected(tab):
            away_since = away_since or began
            if began - away_since > ABANDONED_SECONDS:
                return False  # the tab is gone: end without a write it could not receive
            await asyncio.sleep(POLL_SECONDS)
            continue
        away_since = None
        # A read first asks whether the session still holds when users or sessions were
        # written since the last check (a sign-out, a disabled user, a reset password: the
        # feed's SESSIONS), and every SESSION_CHECK_SECONDS anyway (a session expiring
        # writes nothing). Asking on every tick was the largest cost of 50 open pages.
        seen = feed.version(LIVE)  # before reading: a change during the read reads again
        if feed.version(SESSIONS) != sessions_seen or began - checked_at >= SESSION_CHECK_SECONDS:
            sessions_seen, checked_at = feed.version(SESSIONS), began
            if await state.current_user() is None:
                await _stop(state, loop_id)
                # A tab away now is loading a page (its own sign-out's login page): that page
                # decides. A redirect sent now would reach it late and cut a navigation short.
                return await _tab_connected(tab)
        try:
            data = await state.fetch()
        except Exception:
            # A page that stopped updating would look live and be stale: the loop lives on,
            # and says so once per outage, not once per page and retry.
            if not failing:
                log.warning("a live page's read failed; reading again", exc_info=True)
            failing = True
            await asyncio.sleep(RETRY_READ_SECONDS)
            continue
        failing = False
        if not await _tab_connected(tab):
            continue  # closed while this was read: its rows would go nowhere
        # Entering the state costs a lock, proxies and a delta even when nothing changed, and
        # the bell's rows stay the same for minutes on every open page: a read equal to the
        # last one applied is skipped. RECHECK_SECONDS still brings a look at ``watching``.
        if data != applied or began - entered_at >= RECHECK_SECONDS:
            async with state:
                if state.watching != loop_id:
                    return False
                state.apply(data)
            applied, entered_at = data, began
        await asyncio.sleep(max(0.0, state.min_interval - (time.monotonic() - began)))
        await feed.wait(LIVE, seen, at_most=FALLBACK_SECONDS)


class LiveState(rx.State, mixin=True):
    """Mixed into a live page's state (first among its bases): ``live_region`` starts
    ``watch`` when the page appears and ``stop_watching`` when it leaves."""

    watching: int = 0
    # At most how often the page re-reads while changes keep coming.
    min_interval: ClassVar[float] = MIN_INTERVAL_SECONDS

    @rx.event(background=True)
    @requires(Role.VIEWER, quiet=True)
    async def watch(self):
        # The page's state has fetch and apply.
        if await live_loop(self):  # type: ignore[arg-type]
            return rx.redirect(routes.LOGIN)
        return None

    @rx.event
    @public("it only ends this tab's own watcher and reads nothing")
    def stop_watching(self):
        self.watching = 0


async def _stop(state: LivePage, loop_id: int) -> None:
    async with state:
        if state.watching == loop_id:
            state.watching = 0


def _client_token(state: LivePage) -> str | None:
    """The tab's token, read once per loop: through the state's proxy every read of
    ``router`` builds proxies anew, a third of a live loop's CPU when asked twice a tick."""
    try:
        return str(state.router.session.client_token)
    except Exception:
        return None


async def _tab_connected(tab: str | None) -> bool:
    """Whether the tab's websocket is connected (to any worker). Reflex offers no public way to
    ask, so this uses what its shared states use; when that cannot answer, the tab counts as
    connected (the loop then behaves as it did without this check)."""
    if tab is None:
        return True
    try:
        from reflex_base.registry import RegistrationContext

        namespace = RegistrationContext.get().app.event_namespace
        if namespace is None:
            return True
        return bool(await namespace._token_manager.is_token_connected(tab))
    except Exception:
        return True


T = TypeVar("T")


@dataclass
class _Read:
    """A shared read: the feed's version when it started, when it ended (None while it runs)
    and its result."""

    version: int
    result: asyncio.Future[Any]
    ended_at: float | None = None


# Reads of rows every viewer sees alike (the Overview, the bell), per key: the latest read
# (running or ended), and the one queued to start when a running one ends.
_SHARED: dict[str, _Read] = {}
_NEXT: dict[str, asyncio.Future[Any]] = {}


async def shared_read(key: str, read: Callable[[], Awaitable[T]]) -> T:
    """One read per process for every open page that shows the same rows: a change wakes
    every page at once, and they all take the read that started after it (or the one that
    ended less than ``MIN_INTERVAL_SECONDS`` ago with nothing changed since) instead of each
    asking the database. 50 admins on the Overview cost one read per change, not 50.

    At most one read per key runs at a time. A page that needs a newer state than the running
    read's waits for the one read queued behind it, which every such page shares. Starting a
    read per newer version instead (syncs move the version every few milliseconds) ran the
    same read several times at once: up to four Overview reads of 0.4-0.7 s each were seen
    together with 50 pages and 20 syncs (bench/live_latency.py)."""
    loop = asyncio.get_running_loop()
    version = get_feed().version(LIVE)
    latest = _SHARED.get(key)
    if latest is not None and latest.result.get_loop() is loop:
        if latest.version >= version:
            fresh = (
                latest.ended_at is None or time.monotonic() - latest.ended_at < MIN_INTERVAL_SECONDS
            )
            if fresh:
                return await asyncio.shield(latest.result)
        elif latest.ended_at is None:  # running, but older than this page's change
            queued = _NEXT.get(key)
            if queued is None or queued.get_loop() is not loop:
                queued = _NEXT[key] = loop.create_task(_after(key, latest, read))
            return await asyncio.shield(queued)
    return await asyncio.shield(_start(key, read).result)


def _start(key: str, read: Callable[[], Awaitable[Any]]) -> _Read:
    entry = _Read(get_feed().version(LIVE), asyncio.ensure_future(read()))
    _SHARED[key] = entry

    def ended(done: asyncio.Future[Any]) -> None:
        if _SHARED.get(key) is not entry:
            return  # a newer read took its place
        if done.cancelled() or done.exception() is not None:
            del _SHARED[key]  # the next page reads again
        else:
            entry.ended_at = time.monotonic()

    entry.result.add_done_callback(ended)
    return entry


async def _after(key: str, running: _Read, read: Callable[[], Awaitable[T]]) -> T:
    """The queued read: it starts once ``running`` ended, however that ended."""
    await asyncio.wait([running.result])
    _NEXT.pop(key, None)
    return await asyncio.shield(_start(key, read).result)


def assign_changed(state: Any, values: dict[str, Any]) -> None:
    """Set the fields whose value differs. Reflex sends every assigned field to the browser,
    equal or not, so a tick that re-reads the same rows must assign nothing to send nothing."""
    for name, value in values.items():
        if getattr(state, name) != value:
            setattr(state, name, value)


def live_region(*children: rx.Component, watch: Any, stop: Any, **props: Any) -> rx.Component:
    """Wrap a page's live part: watching while it is on screen."""
    props.setdefault("width", "100%")
    return rx.box(*children, on_mount=watch, on_unmount=stop, **props)
