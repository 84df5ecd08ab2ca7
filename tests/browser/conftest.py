"""A real hub (``hub serve``, production build) and Debian's chromium driven by Playwright.

One hub per test module. The hubs of a session take turns on one port where they can, so
that the frontend bundle built for the first (it embeds the port) is reused by the next
(dashboard/serve_prod.py skips an unchanged build). Screenshots go to
test-output/screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"


@dataclass
class Hub:
    url: str
    data_dir: Path
    env: dict[str, str]
    pid: int = 0  # of the `hub serve` process, when started by running_hub

    def sandbox_headers(self) -> dict[str, str]:
        """What the mounted sandbox's control API needs: the token the hub generated."""
        token = (self.data_dir / "sandbox-control.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dashboard.cli", *args], input=stdin, text=True,
            capture_output=True, env=self.env, cwd=PROJECT_ROOT, timeout=120, check=True,
        )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SESSION_PORT = _free_port()


def hub_port() -> int:
    """The session's port when no hub holds it now, else a free one (a hub started while
    another runs builds its own bundle, in its own web directory: see running_hub)."""
    from dashboard.cli import port_in_use  # the check `hub serve` makes before it starts

    return _free_port() if port_in_use(SESSION_PORT) else SESSION_PORT


@contextlib.contextmanager
def running_hub(base_dir: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Hub]:
    """``hub serve`` on a free port with its data under ``base_dir``: migrated, the first admin
    created, answering /login/. ``extra_env`` adds settings (DATABASE_URL, REDIS_URL ...).
    On the way out it stops the hub and checks its log (``base_dir/hub.log``): no secret, no
    crashed event handler."""
    port = int((extra_env or {}).get("HUB_PORT") or hub_port())
    data_dir = base_dir / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop("DATABASE_URL", None)
    env.update({
        "HUB_DATA_DIR": str(data_dir), "HUB_PORT": str(port),
        "HUB_ADMIN_EMAIL": ADMIN_EMAIL, "HUB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # As `make run` does: the sandbox mounted (off by default), its control token
        # generated into the data dir (``Hub.sandbox_headers``).
        "HUB_SANDBOX": "true", "HUB_SANDBOX_DEMO": "false",
    })  # fmt: skip
    env.update(extra_env or {})
    private_web = None
    if port != SESSION_PORT and "REFLEX_WEB_WORKDIR" not in env:
        # Another hub serves the checkout's .web/build meanwhile: building there would
        # replace the bundle under it with one that talks to this hub's port.
        private_web = private_web_dir(base_dir)
        env["REFLEX_WEB_WORKDIR"] = str(private_web)
    hub = Hub(url=f"http://localhost:{port}", data_dir=data_dir, env=env)
    tracked_before = _tracked_changes()
    hub.cli("migrate")
    hub.cli("users", "ensure-admin")
    log_path = base_dir / "hub.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "serve"], cwd=PROJECT_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    hub.pid = process.pid
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{hub.url}/login/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield hub
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended (a failed start)
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
        log_text = log_path.read_text()
        # Secrets must never reach the logs, and no event handler may have crashed.
        assert ADMIN_PASSWORD not in log_text
        assert "Backend Exception" not in log_text, log_text[-4000:]
        # A quiet, true start: no advice that does not apply, the Node.js Reflex asks for,
        # and the working tree as it was (Reflex rewrites reflex.lock/ on start).
        if private_web is not None:
            shutil.rmtree(private_web, ignore_errors=True)  # 200+ MB; hub.log stays
        assert "uv run reflex run" not in log_text
        assert "of Node.js is out of date" not in log_text
        assert _tracked_changes() == tracked_before


def _tracked_changes() -> str | None:
    """`git status` of the files a start could rewrite; None outside a git checkout."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "reflex.lock", "rxconfig.py", "assets"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return status.stdout


def private_web_dir(base_dir: Path) -> Path:
    """A copy of the checkout's ``.web`` (its installed packages and its last build, which the
    hub reuses only if it was built from the same inputs) for one hub to build into, given as
    ``REFLEX_WEB_WORKDIR``: a hub started in the same checkout meanwhile (another test run)
    then cannot replace the build it serves, nor it theirs."""
    source = PROJECT_ROOT / ".web"
    target = base_dir / "web"
    if not source.is_dir():
        target.mkdir(parents=True)  # Reflex sets it up from scratch, as in a fresh checkout
        return target
    shutil.copytree(source, target, symlinks=True)
    return target


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: `make test` installs Debian's chromium")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_chromium()
    with running_hub(tmp_path_factory.mktemp("hub")) as hub:
        yield hub


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def sign_in(page, hub: Hub, email: str, password: str) -> None:
    page.goto(f"{hub.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{hub.url}/", timeout=30_000)


def sent_to_sign_in(page, url: str) -> None:
    """Open ``url`` without a session and wait until the hub has sent the tab to /login/.
    The page does that as soon as its websocket answers, which can be before the document's
    load event (Playwright would call the goto interrupted): wait for the navigation to
    begin, not to load."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.goto(url, wait_until="commit")
    except PlaywrightError as error:  # sent on to /login/ before the goto counted as begun
        if "interrupted by another navigation" not in str(error):
            raise
    page.wait_for_url("**/login**", timeout=30_000)


def screenshot(page, name: str, *, full_page: bool = True) -> None:
    """Save to test-output/screenshots/; ``full_page=False`` keeps an open popover open."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


DOCS_SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"


def docs_screenshot(page, name: str) -> None:
    """A screenshot for the test output and, with UPDATE_DOCS_SCREENSHOTS=1, for docs/screenshots/
    (opt-in, so an ordinary test run leaves the tracked images alone)."""
    screenshot(page, name)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"))


def connect_shopify_now(page, hub: Hub, name: str, shop: str) -> None:
    """The wizard's Shopify path with **Connect now** and the sandbox's consent (Install app),
    ending on the new integration's page."""
    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Shop domain").fill(shop)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Connect now").click()
    page.get_by_role("button", name="Install app").click()  # the sandbox's consent page
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"), timeout=30_000)
    page.get_by_role("button", name="Sync all now").wait_for(timeout=30_000)


AXE_SCRIPT = PROJECT_ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# What fails a page: axe's two highest impacts (moderate and minor are reported, not failed).
AXE_FAILING_IMPACTS = ("serious", "critical")


def axe_violations(page) -> list[dict]:
    """Run axe-core (npm ``axe-core``, installed by `make axe`) on the page as it is now and
    return its violations of serious or critical impact, each with the elements it found.
    The page's context needs ``bypass_csp=True``: the hub's CSP refuses injected scripts."""
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} missing: `make axe` (part of `make test`) installs axe-core")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        targets: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
                        summary: (v.nodes[0] || {}).failureSummary || ''}))"""
    )
    return [v for v in violations if v["impact"] in AXE_FAILING_IMPACTS]


def tab_to(page, target, *, limit: int = 60, key: str = "Tab") -> None:
    """Press Tab (or ``key``) until the element of ``target`` (a locator) has the focus, as a
    keyboard user would; fails when it is not reached within ``limit`` presses."""
    handle = target.element_handle(timeout=30_000)
    for _ in range(limit):
        if page.evaluate("el => el === document.activeElement", handle):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{target} not reached with {limit} presses of {key}")


def focus_ring_visible(page) -> bool:
    """Whether the focused control draws a ring: an outline on it or on the frame around it
    (Radix draws a text field's ring on the field's frame)."""
    return bool(
        page.evaluate(
            """() => {
                let el = document.activeElement;
                for (let depth = 0; el && depth < 3; depth++, el = el.parentElement) {
                    const style = getComputedStyle(el);
                    if (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
                        return true;
                }
                return false;
            }"""
        )
    )


@dataclass
class Seeded:
    """A hub with something on every page: a connected Shopify store whose first sync ran
    (runs, records, logs) and a merchant's connect link for another store."""

    integration_url: str
    connect_link: str


@pytest.fixture(scope="module")
def seeded(hub: Hub, browser) -> Seeded:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    connect_shopify_now(page, hub, "Axe store", "axe-store.myshopify.com")
    integration_url = page.url
    page.get_by_role("tab", name="Runs").click()
    page.get_by_text("succeeded").first.wait_for(timeout=60_000)

    page.goto(f"{hub.url}/integrations/new")
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Name").fill("Axe link store")
    page.get_by_label("Shop domain").fill("axe-link.myshopify.com")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create connect link").click()
    connect_link = page.locator("#connect-link").inner_text(timeout=30_000)
    context.close()
    return Seeded(integration_url=integration_url, connect_link=connect_link)
