"""The viewers of bench/live_latency.py: signed-in sessions on a live page, in chromium
(``BrowserViewer``) or without a browser (``SocketViewer``). Both ``arm`` a watch for a text
and ``wait`` for the moment it showed (or went).

Fifty headless chromium pages on two CPUs measure chromium: each page re-renders the Overview
on every delta, and the renderers alone need more CPU than the machine has. What the hub pays
per open page is its websocket: the session's state, its live loops, the deltas it is sent.
A ``SocketViewer`` is that and nothing more. It signs in over HTTP like a browser (its own
session cookie), opens Reflex's websocket (``/_event``, Engine.IO 4 over a plain websocket)
with its own client token, and replays the frames a real chromium page sent when it opened
the same page (hydrate, then the page's ``watch`` events), recorded by ``record_frames``. It
then reads every delta the hub sends and notes when a watched text arrives in one (the hub's
side of "write -> visible": the browser's render is not in it).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from typing import Any

import httpx
import simple_websocket

NAMESPACE = "/_event"

# Arms a watch for ``text`` in the page's rendered text (innerText: what a user can see):
# window.__probe.at becomes Date.now() when its presence equals ``present``.
ARM_PROBE = """([text, present]) => {
    const probe = {at: null};
    const check = () => {
        if (probe.at === null && document.body.innerText.includes(text) === present) {
            probe.at = Date.now();
            observer.disconnect();
        }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
    window.__probe = probe;
    check();
}"""


class BrowserViewer:
    """A signed-in chromium page: a MutationObserver stamps when the text shows (or goes)."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def arm(self, text: str, *, present: bool) -> None:
        self.page.evaluate(ARM_PROBE, [text, present])

    def wait(self, timeout: float) -> float | None:
        try:
            self.page.wait_for_function(
                "window.__probe.at !== null", timeout=timeout * 1000, polling=50
            )
        except Exception:
            return None
        return float(self.page.evaluate("window.__probe.at")) / 1000

    def close(self) -> None:
        pass  # the browser closes its pages


def record_frames(page: Any, url: str, ready: Any) -> list[str]:
    """The Socket.IO frames ``page`` sends while it opens ``url`` (until ``ready()`` returns
    and a second more): the connect packet with the hydrate event, then the page's events."""
    sent: list[str] = []

    def on_websocket(socket: Any) -> None:
        sent.clear()  # only the last page load's socket
        socket.on("framesent", lambda payload: sent.append(payload))

    page.on("websocket", on_websocket)
    page.goto(url)
    ready()
    time.sleep(1.0)
    page.remove_listener("websocket", on_websocket)
    frames = [frame for frame in sent if isinstance(frame, str) and frame.startswith("4")]
    assert frames and frames[0].startswith(f"40{NAMESPACE},"), frames[:2]
    return frames


def sign_in(base: str, email: str, password: str) -> str:
    """A new session, as the login form posts it: the session cookie's value."""
    response = httpx.post(
        f"{base}/api/session", data={"email": email, "password": password},
        headers={"Origin": base}, follow_redirects=False, timeout=30,
    )  # fmt: skip
    cookie = response.cookies.get("hub_session")
    if response.status_code != 303 or not cookie:
        raise RuntimeError(f"sign-in refused: {response.status_code} {response.headers}")
    return cookie


class SocketViewer:
    """One signed-in session on a page, over its websocket only."""

    def __init__(self, base: str, frames: list[str], cookie: str) -> None:
        self.frames = frames
        self.token = str(uuid.uuid4())
        ws_base = base.replace("http://", "ws://").replace("https://", "wss://")
        self.socket = simple_websocket.Client.connect(
            f"{ws_base}{NAMESPACE}/?token={self.token}&EIO=4&transport=websocket",
            headers={"Cookie": f"hub_session={cookie}", "Origin": base},
        )
        self.lock = threading.Lock()
        self.watch: tuple[str, bool] | None = None  # (text, present) being watched
        self.seen_at: float | None = None
        self.seen = threading.Event()
        self.connected = threading.Event()
        self.deltas = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def arm(self, text: str, *, present: bool) -> None:
        """Note the time the next delta shows ``text`` (``present``) or a list without it."""
        with self.lock:
            self.watch, self.seen_at = (text, present), None
            self.seen.clear()

    def wait(self, timeout: float) -> float | None:
        """When the watched change arrived (epoch seconds), None if not within ``timeout``."""
        return self.seen_at if self.seen.wait(timeout) else None

    def close(self) -> None:
        self.socket.close()

    def _read(self) -> None:
        try:
            while True:
                message = self.socket.receive()
                if message is None:
                    continue
                if message == "2":  # Engine.IO ping
                    self.socket.send("3")
                elif message.startswith("0"):  # Engine.IO open: connect with the hydrate
                    self.socket.send(self.frames[0])
                elif message.startswith(f"40{NAMESPACE},"):  # connected: the page's events
                    for frame in self.frames[1:]:
                        self.socket.send(frame)
                    self.connected.set()
                elif message.startswith(f"42{NAMESPACE},"):
                    self.deltas += 1
                    self._check(message)
        except simple_websocket.ConnectionClosed:
            return

    def _check(self, message: str) -> None:
        with self.lock:
            if self.watch is None or self.seen.is_set():
                return
            text, present = self.watch
            # The Overview's "Waiting for reconnection" list travels whole in each delta.
            shown = text in message
            if shown if present else ('"reauth_rx_state_"' in message and not shown):
                self.seen_at = time.time()
                self.seen.set()


def open_socket_viewers(
    base: str, frames: list[str], count: int, email: str, password: str
) -> list[SocketViewer]:
    viewers = [SocketViewer(base, frames, sign_in(base, email, password)) for _ in range(count)]
    for viewer in viewers:
        if not viewer.connected.wait(60):
            raise RuntimeError("a socket viewer's page did not connect within 60 s")
    return viewers


def open_viewers(browser: Any, hub: Any, *, page: str, count: int, browsers: int) -> list[Any]:
    """``count`` signed-in sessions (own cookies, own websocket) on the page: the first
    ``browsers`` in chromium (own contexts), the rest websocket-only (``SocketViewer``),
    replaying what the first chromium page sent."""
    from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
    from tests.browser.conftest import sign_in as sign_in_page

    viewers: list[Any] = []
    frames: list[str] = []
    for _ in range(browsers):
        tab = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in_page(tab, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
        if page == "integrations":
            tab.goto(f"{hub.url}/integrations")
            tab.get_by_role("link", name="Live probe").wait_for(timeout=60_000)
        else:
            # A panel always there (what the attention panel says depends on incidents: the
            # bench's shops have no webhook subscriptions, which opens one each).
            panel = tab.get_by_role("heading", name="Waiting for reconnection")
            if not frames and count > browsers:
                ready = functools.partial(panel.wait_for, timeout=60_000)
                frames = record_frames(tab, f"{hub.url}/", ready)
            panel.wait_for(timeout=60_000)
        viewers.append(BrowserViewer(tab))
    sockets = count - browsers
    return viewers + open_socket_viewers(hub.url, frames, sockets, ADMIN_EMAIL, ADMIN_PASSWORD)
