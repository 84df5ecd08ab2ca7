"""Page states driven directly, as a browser's events would: live pages re-read the database
twice a second, and a tick that finds nothing new must send nothing (Reflex sends every field
assigned in an event, equal or not, so this checks which fields ``apply`` leaves dirty); and
what a page loads goes only to a signed-in client."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from reflex.istate.data import RouterData
from sqlmodel import Session

from dashboard.models import Integration, Product, Role, User
from dashboard.pages.overview import OverviewState
from dashboard.pages.records import RecordsState
from dashboard.pages.runs import RunsState
from dashboard.pages.settings import SettingsState
from dashboard.services.audit import record_audit
from dashboard.services.auth import (
    create_session,
    create_user,
    reset_password,
    revoke_session,
    set_disabled,
)
from dashboard.state import live
from dashboard.state.notifications import NotificationState


async def test_overview_sends_only_what_changed_since_the_last_tick(hub_db: sa.Engine) -> None:
    overview = OverviewState(_reflex_internal_init=True)
    overview.apply(await overview.fetch())
    assert "loaded" in overview.dirty_vars  # the first read fills the page
    overview.dirty_vars.clear()

    overview.apply(await overview.fetch())
    assert overview.dirty_vars == set()  # a quiet tick

    with sa.orm.Session(hub_db) as session:
        session.add(Integration(platform="shopify", display_name="Acme",
                                shop_domain="acme.myshopify.com", status="connected"))  # fmt: skip
        session.commit()
    overview.apply(await overview.fetch())
    assert "cards" in overview.dirty_vars  # the watermark moved: the health cards are read again
    assert overview.cards["total"] == 1
    assert not overview.dirty_vars & {"per_hour", "running", "reauth", "failures_24h", "loaded"}


async def test_pages_showing_the_same_rows_share_one_read_per_change(
    hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 admins' Overviews woken by one change read the database once; the next change, or
    the fallback's tick after MIN_INTERVAL_SECONDS, reads again; a failed read is not kept."""
    monkeypatch.setattr(live, "MIN_INTERVAL_SECONDS", 0.2)
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)  # the database answering
        return reads

    async def fifty_pages() -> set[int]:
        return set(await asyncio.gather(*(live.shared_read("test", read) for _ in range(50))))

    assert (await fifty_pages(), reads) == ({1}, 1)
    assert (await fifty_pages(), reads) == ({1}, 1)  # nothing changed since, a moment ago
    with sa.orm.Session(hub_db) as session:  # a committed write: the feed moves
        session.add(Integration(platform="shopify", display_name="Acme",
                                shop_domain="acme.myshopify.com", status="connected"))  # fmt: skip
        session.commit()
    assert (await fifty_pages(), reads) == ({2}, 2)
    await asyncio.sleep(0.25)  # no notification: a page's fallback tick reads anew
    assert (await fifty_pages(), reads) == ({3}, 3)

    async def failing() -> int:
        raise RuntimeError("database went away")

    live._SHARED.pop("test")
    with pytest.raises(RuntimeError):
        await live.shared_read("test", failing)
    assert await live.shared_read("test", read) == 4  # read again, not the failure


async def test_while_writes_keep_coming_one_read_runs_and_one_waits(
    hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Syncs move the feed every few milliseconds. Pages woken by each move must not start a
    read each: while one read runs, every page that needs a newer state shares the one read
    queued behind it, and it starts after the running one has ended."""
    from dashboard.services.changefeed import LIVE, get_feed

    feed = get_feed()
    running = 0
    most_at_once = 0
    reads = 0
    started_versions: list[int] = []

    async def read() -> int:
        nonlocal running, most_at_once, reads
        reads += 1
        started_versions.append(feed.version(LIVE))
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(0.05)
        running -= 1
        return reads

    first = asyncio.ensure_future(live.shared_read("busy", read))
    await asyncio.sleep(0.01)  # the first read runs
    later: list[asyncio.Future[int]] = []
    for _ in range(20):  # a write, then a page woken by it, while that read runs
        feed.changed(LIVE)
        await asyncio.sleep(0)
        later.append(asyncio.ensure_future(live.shared_read("busy", read)))
    assert await first == 1
    assert set(await asyncio.gather(*later)) == {2}  # every later page: the one queued read
    assert (reads, most_at_once) == (2, 1)
    assert started_versions[1] >= started_versions[0] + 20  # it read after every write
    live._SHARED.pop("busy")


async def test_runs_page_and_bell_send_nothing_on_a_quiet_tick(hub_db: sa.Engine) -> None:
    for state in (RunsState(_reflex_internal_init=True),
                  NotificationState(_reflex_internal_init=True)):  # fmt: skip
        state.apply(await state.fetch())
        state.dirty_vars.clear()
        state.apply(await state.fetch())
        assert state.dirty_vars == set(), type(state).__name__


async def test_page_data_goes_only_to_a_signed_in_client(hub_db: sa.Engine) -> None:
    """Event handlers are reachable by anyone holding a websocket, signed in or not."""
    with Session(hub_db) as session:
        acme = Integration(platform="shopify", display_name="Acme",
                           shop_domain="acme.myshopify.com", status="connected")  # fmt: skip
        session.add(acme)
        session.flush()
        product = Product(integration_id=acme.id, external_id="gid://shopify/Product/1",
                          raw={"title": "Secret plans"}, title="Secret plans")  # fmt: skip
        session.add(product)
        record_audit(session=session, actor="ann@example.com", action="integration.create",
                     target=str(acme.id))  # fmt: skip
        user, _ = create_user(session=session, email="viewer@example.com", role=Role.VIEWER)
        token = create_session(session=session, user=user)
        session.commit()
        product_id, acme_id = str(product.id), str(acme.id)

    records, settings = (
        RecordsState(_reflex_internal_init=True),
        SettingsState(_reflex_internal_init=True),
    )
    await RecordsState.show_record.fn(records, product_id)
    await SettingsState.load_settings.fn(settings)
    assert records.detail_raw == "" and settings.audit == [] and settings.keys == []

    # The session token reaches the state as the websocket handshake's Cookie header.
    signed_in = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    records.router = settings.router = signed_in
    await RecordsState.show_record.fn(records, product_id)
    await SettingsState.load_settings.fn(settings)
    assert "Secret plans" in records.detail_raw
    # The audit log names the integration and links to it.
    (entry,) = [e for e in settings.audit if e["action"] == "integration.create"]
    assert entry["target"] == "Acme" and entry["href"] == f"/integrations/{acme_id}"


@pytest.mark.parametrize("ended_by", ["sign-out", "disable", "password reset"])
async def test_a_live_page_stops_streaming_within_a_second_of_the_session_ending(
    hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch, ended_by: str
) -> None:
    """The tab sees no new rows once its session is over, and is sent to the login page."""
    with Session(hub_db) as session:
        admin, _ = create_user(session=session, email="admin@example.com", role=Role.ADMIN)
        viewer, _ = create_user(session=session, email="viewer@example.com", role=Role.VIEWER)
        token = create_session(session=session, user=viewer)
        session.commit()
        admin_id, viewer_id = admin.id, viewer.id

    reads: list[float] = []
    real_fetch = OverviewState.fetch

    async def counted_fetch(self: OverviewState) -> object:
        reads.append(time.monotonic())
        return await real_fetch(self)

    async def connected(token: object) -> bool:
        return True  # the tab's websocket is open (another test's app may hold the registry)

    monkeypatch.setattr(OverviewState, "fetch", counted_fetch)
    monkeypatch.setattr(live, "_tab_connected", connected)
    tab = OverviewState(_reflex_internal_init=True)
    tab.router = RouterData.from_router_data({"headers": {"cookie": f"hub_session={token}"}})
    watcher = asyncio.create_task(OverviewState.watch.fn(tab))

    async def streaming() -> None:
        while not tab.loaded:  # the first read landed (the health cards' first read is cold)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(streaming(), timeout=5)
    assert reads

    with Session(hub_db) as session:
        actor = session.get(User, admin_id)
        assert actor is not None
        if ended_by == "sign-out":
            revoke_session(session=session, token=token)
        elif ended_by == "disable":
            set_disabled(session=session, user_id=viewer_id, disabled=True, actor=actor)
        else:
            reset_password(session=session, user_id=viewer_id, actor=actor)
        session.commit()
    ended_at = time.monotonic()

    answer = await asyncio.wait_for(watcher, timeout=1.0)
    assert [e.handler.fn.__qualname__ for e in [answer]] == ["_redirect"]
    assert tab.watching == 0
    assert not [read for read in reads if read > ended_at + 0.01]  # nothing read after the end


class _Tab:
    """A live page's state as the loop sees it, counting its writes (each one a delta Reflex
    would send to the browser)."""

    def __init__(self) -> None:
        self.watching = 0
        self.router = None
        self.min_interval = 0.0  # re-read as soon as told (or the fallback)
        self.writes = 0
        self.applied = 0
        self.session_checks = 0

    async def current_user(self) -> object:
        self.session_checks += 1
        return object()

    async def fetch(self) -> object:
        return self.applied

    def apply(self, data: object) -> None:
        self.applied += 1

    async def __aenter__(self) -> _Tab:
        self.writes += 1
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


async def test_a_closed_tabs_loop_ends_without_writing_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reflex logs "Attempting to send delta to disconnected client" for every write to a tab
    that has gone: the loop stops writing the moment its tab is away, ends once it has been
    away ABANDONED_SECONDS, and the tab, back later, gets a live page again."""
    connected = True

    async def tab_connected(token: object) -> bool:
        return connected

    monkeypatch.setattr(live, "_tab_connected", tab_connected)
    monkeypatch.setattr(live, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(live, "ABANDONED_SECONDS", 0.2)
    # Re-read often without a change notification (the loop waits for the change feed).
    monkeypatch.setattr(live, "FALLBACK_SECONDS", 0.01)
    tab = _Tab()
    loop = asyncio.create_task(live.live_loop(tab))  # type: ignore[arg-type]
    while tab.applied < 3:
        await asyncio.sleep(0.01)

    connected = False
    writes_when_closed = tab.writes
    assert await asyncio.wait_for(loop, timeout=2) is False
    assert tab.writes == writes_when_closed  # nothing sent to the closed tab
    assert not live._RUNNING
    assert tab.watching != 0  # left as it was: resetting it would have been a write

    connected = True  # the same tab again (a laptop waking up): its page is live again
    again = asyncio.create_task(live.live_loop(tab))  # type: ignore[arg-type]
    applied = tab.applied
    while tab.applied < applied + 2:
        await asyncio.sleep(0.01)
    assert tab.watching in live._RUNNING
    # A second watch of the same tab (the page mounted twice) does not start another loop.
    assert await live.live_loop(tab) is False  # type: ignore[arg-type]
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again
    assert not live._RUNNING


@pytest.fixture
def quick_connected_tab(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tab stays connected, and its loop re-reads without waiting for a change."""

    async def connected(token: object) -> bool:
        return True

    monkeypatch.setattr(live, "_tab_connected", connected)
    monkeypatch.setattr(live, "FALLBACK_SECONDS", 0.01)


@pytest.mark.usefixtures("quick_connected_tab")
async def test_a_read_equal_to_the_last_one_does_not_enter_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entering a page's state costs a lock and a delta even when nothing changed: a loop
    whose reads bring nothing new enters it only every RECHECK_SECONDS, and there sees that
    its page has left."""

    class QuietTab(_Tab):
        reads = 0

        async def fetch(self) -> object:
            self.reads += 1
            return {"open_incidents": 0, "items": []}  # a new object, equal every time

    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.3)
    tab = QuietTab()
    loop = asyncio.create_task(live.live_loop(tab))  # type: ignore[arg-type]
    while tab.reads < 10:
        await asyncio.sleep(0.01)
    assert (tab.applied, tab.writes) == (1, 2)  # one apply; the other entry took the loop id
    tab.watching = 0  # the page left (its unmount's stop_watching)
    await asyncio.wait_for(loop, timeout=2)  # ended at its next look, within RECHECK_SECONDS
    assert tab.applied == 1


@pytest.mark.usefixtures("quick_connected_tab")
async def test_a_failed_read_leaves_the_page_live(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database restarting, or a connection it closed, fails a read: the page keeps what it
    shows and reads again, instead of its loop ending and the page silently going stale."""

    class FlakyTab(_Tab):
        reads = 0

        async def fetch(self) -> object:
            self.reads += 1
            if self.reads == 2:
                raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
            return {"read": self.reads}

    monkeypatch.setattr(live, "RETRY_READ_SECONDS", 0.01)
    tab = FlakyTab()
    loop = asyncio.create_task(live.live_loop(tab))  # type: ignore[arg-type]
    while tab.applied < 3:
        await asyncio.sleep(0.01)
    assert not loop.done() and tab.reads >= 4  # read on past the failure, and applied
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_live_page_checks_its_session_when_sessions_change_not_every_tick(
    hub_db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session check per tick was the largest cost of 50 open Overviews (a profile): a tab
    checks once, then again only when users or sessions were written (any sign-out wakes it
    at once) or SESSION_CHECK_SECONDS passed (a session expiring writes nothing)."""

    async def connected(token: object) -> bool:
        return True

    monkeypatch.setattr(live, "_tab_connected", connected)
    monkeypatch.setattr(live, "FALLBACK_SECONDS", 0.01)
    tab = _Tab()
    loop = asyncio.create_task(live.live_loop(tab))  # type: ignore[arg-type]
    while tab.applied < 20:
        await asyncio.sleep(0.01)
    assert tab.session_checks == 1  # twenty ticks, one check

    with Session(hub_db) as session:  # someone signs in elsewhere: sessions were written
        user, _ = create_user(session=session, email="viewer@example.com", role=Role.VIEWER)
        create_session(session=session, user=user)
        session.commit()
    applied = tab.applied
    while tab.applied < applied + 3:
        await asyncio.sleep(0.01)
    assert tab.session_checks == 2

    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.05)  # time alone brings a check too
    await asyncio.sleep(0.2)
    assert tab.session_checks >= 3
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
