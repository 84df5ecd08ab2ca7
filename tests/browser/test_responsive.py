"""The main pages fit a phone (390 px) and a wide screen (1,920 px): the header is whole, the
page never scrolls sideways (wide tables scroll inside their own frame), and a screenshot of
each page at both widths goes to test-output/screenshots/ (with UPDATE_DOCS_SCREENSHOTS=1 the
README's ones go to docs/screenshots/). The favicon and the platform marks are served.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.browser.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Hub,
    Seeded,
    docs_screenshot,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.browser
TIMEOUT = 30_000
SCREENS = {390: 844, 1920: 1080}  # width: height (a phone, a desktop monitor)
# The README shows these (docs/screenshots/<name>-<width>.png).
DOCS_PAGES = {("overview", 1920), ("integration", 1920), ("wizard", 1920), ("integrations", 390)}


def text(words: str) -> Callable:
    # Visible only: a select's hidden native <option> may hold the same words.
    return lambda page: page.get_by_text(words).filter(visible=True).first.wait_for(
        timeout=TIMEOUT
    )


def page_overflow(page) -> int:
    """Pixels by which the page is wider than the window (what a sideways scroll would show)."""
    return int(
        page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


def outside_window(page, locator, width: int) -> bool:
    box = locator.bounding_box()
    return box is None or box["x"] < 0 or box["x"] + box["width"] > width + 0.5


@pytest.mark.parametrize("width", sorted(SCREENS))
def test_main_pages_fit_the_screen(hub: Hub, browser, seeded: Seeded, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": SCREENS[width]})
    page = context.new_page()
    problems: list[str] = []

    def fits(name: str) -> None:
        """The page as it is now: no sideways scroll; its screenshot."""
        page.wait_for_timeout(300)  # entrance animations end; layout is final
        if (overflow := page_overflow(page)) > 0:
            problems.append(f"{name}: the page scrolls {overflow} px sideways")
        screenshot(page, f"{name.replace(' ', '-')}-{width}")

    def visit(name: str, url: str, ready: Callable, *, signed_in: bool = True) -> None:
        page.goto(url)
        ready(page)
        fits(name)
        if signed_in:
            title = page.get_by_role("main").get_by_role("heading").first
            for what, locator in (
                ("title", title),
                ("user menu", page.get_by_role("button", name="User menu")),
                ("colour mode button", page.get_by_role("button", name="Toggle light and dark")),
            ):
                if outside_window(page, locator, width):
                    problems.append(f"{name}: the header's {what} is cut off")
        if (name, width) in DOCS_PAGES:
            docs_screenshot(page, f"{name}-{width}")

    visit("login", f"{hub.url}/login", text("Sign in"), signed_in=False)
    visit("merchant-connect", seeded.connect_link, text("Approve"), signed_in=False)
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    visit("overview", f"{hub.url}/", text("Records synced per hour"))
    visit("integrations", f"{hub.url}/integrations", text("Axe store"))
    visit("integration", seeded.integration_url, text("Sync all now"))
    page.get_by_role("tab", name="Runs").click()
    page.get_by_text("succeeded").first.wait_for(timeout=TIMEOUT)
    fits("integration runs tab")
    visit("wizard", f"{hub.url}/integrations/new", text("Choose Shopify"))
    page.get_by_role("button", name="Choose Shopify").click()
    page.get_by_label("Shop domain").wait_for(timeout=TIMEOUT)
    fits("wizard details")
    visit("runs", f"{hub.url}/runs", text("Axe store"))
    visit("records", f"{hub.url}/records", text("gid://shopify/Product/"))
    visit("logs", f"{hub.url}/logs", text("Axe store"))
    visit("settings", f"{hub.url}/settings", text("General"))
    context.close()
    assert not problems, "\n".join(problems)


def test_favicon_and_platform_marks_are_served(hub: Hub, browser, seeded: Seeded) -> None:
    favicon = httpx.get(f"{hub.url}/favicon.ico", timeout=10)
    assert favicon.status_code == 200
    assert favicon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file, not the app's HTML
    mark = httpx.get(f"{hub.url}/shopify.svg", timeout=10)
    assert mark.status_code == 200 and "<title>Shopify</title>" in mark.text

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{hub.url}/integrations")
    row = page.get_by_role("row").filter(has_text="Axe store")
    row.locator('img[src="/shopify.svg"]').wait_for(timeout=TIMEOUT)
    assert row.locator('img[src="/shopify.svg"]').evaluate("img => img.naturalWidth") > 0
    context.close()


def test_settings_sub_tabs_show_the_active_one(hub: Hub, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hub, ADMIN_EMAIL, ADMIN_PASSWORD)
    sections = page.get_by_role("navigation", name="Settings sections")
    for path, current in (
        ("/settings", "General"),
        ("/settings/account", "Account"),
        ("/settings/users", "Users"),
        ("/settings/amazon", "Amazon app"),
        ("/settings/go-live", "Go-live check"),
    ):
        page.goto(f"{hub.url}{path}")
        active = sections.locator('[aria-current="page"]')
        active.wait_for(timeout=TIMEOUT)
        assert active.count() == 1 and active.inner_text() == current, path
        # Seen, not only announced: the active tab is drawn apart from the others.
        other = sections.get_by_role("link", name="General" if current != "General" else "Users")
        assert active.evaluate("el => getComputedStyle(el).fontWeight") != other.evaluate(
            "el => getComputedStyle(el).fontWeight"
        )
    context.close()
