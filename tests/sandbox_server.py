"""Run the sandbox on a real port (uvicorn in a thread) for tests that cross real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from connectors.sandbox.app import create_sandbox_app
from connectors.sandbox.installer import install_amazon, install_shopify


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    """Serve an ASGI app with uvicorn in a thread (lifespan on) while the block runs."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@contextmanager
def running_sandbox(**options: Any) -> Iterator[tuple[str, Any]]:
    """Yields (base URL, sandbox app) while a uvicorn server serves it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_sandbox_app(public_base=base, **options)
    with serving(app, port):
        yield base, app


def shopify_install(base: str, shop: str, *, scopes: str = "read_products") -> str:
    """Approve the sandbox app on ``shop`` and return an access token (test set-up only)."""
    with httpx.Client(base_url=base) as client:
        return str(install_shopify(client, shop, scopes=scopes)["access_token"])


def amazon_install(base: str, seller: str, region: str = "na") -> str:
    """Authorize the sandbox app for ``seller`` and return its refresh token (set-up only)."""
    with httpx.Client(base_url=base) as client:
        return install_amazon(client, seller, region)
