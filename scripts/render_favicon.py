"""Render assets/favicon.svg into assets/favicon.ico with Debian's chromium (`make icons`).

Browsers ask for /favicon.ico on every page whatever the page says; an ICO whose images are
PNGs (allowed since Windows Vista, read by every current browser) needs no imaging library.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from playwright.sync_api import Browser, FloatRect, sync_playwright

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SIZES = (16, 32, 48)


def render(svg: str, size: int, browser: Browser) -> bytes:
    page = browser.new_page(viewport={"width": size, "height": size})
    page.set_content(
        f'<html><body style="margin:0;background:transparent">'
        f'<div style="width:{size}px;height:{size}px">{svg}</div></body></html>'
    )
    page.eval_on_selector("svg", f"s => {{ s.setAttribute('width', {size}); "
                          f"s.setAttribute('height', {size}); }}")  # fmt: skip
    clip: FloatRect = {"x": 0, "y": 0, "width": size, "height": size}
    png = page.screenshot(omit_background=True, clip=clip)
    page.close()
    return png


def ico(images: list[tuple[int, bytes]]) -> bytes:
    """ICONDIR, one ICONDIRENTRY per image, then the PNGs themselves."""
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = len(header) + 16 * len(images)
    entries, blobs = b"", b""
    for size, png in images:
        entries += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(png), offset)
        blobs += png
        offset += len(png)
    return header + entries + blobs


def main() -> int:
    svg = (ASSETS / "favicon.svg").read_text()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
        )
        images = [(size, render(svg, size, browser)) for size in SIZES]
        browser.close()
    (ASSETS / "favicon.ico").write_bytes(ico(images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
