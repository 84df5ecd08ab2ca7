"""Run the sandbox on a real port (uvicorn in a thread) for tests that cross real HTTP."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from connectors.sandbox.access import SandboxApps, new_control_token, sandbox_apps
from connectors.sandbox.app import create_sandbox_app
from connectors.sandbox.consent import form_fields
from connectors.sandbox.installer import install_amazon, install_shopify

# The control token of each sandbox these helpers started, by base URL.
_TOKENS: dict[str, str] = {}


def _token_for_new_sandbox() -> str:
    """The hub's token when a test configured one (``hub_env``), as ``hub sandbox serve``
    does: the hub and its sandbox then agree on the apps' secrets. Otherwise a new one."""
    return os.environ.get("HUB_SANDBOX_CONTROL_TOKEN") or new_control_token()


def adopt(base: str, token: str) -> None:
    """Know the token of a sandbox another process started at ``base``."""
    _TOKENS[base] = token


def control_token(base: str) -> str:
    return _TOKENS[base]


def control_headers(base_or_token: str) -> dict[str, str]:
    """The header the sandbox's control API needs: for a sandbox started here (its base
    URL) or for a token."""
    token = _TOKENS.get(base_or_token, base_or_token)
    return {"Authorization": f"Bearer {token}"}


def apps(base: str) -> SandboxApps:
    """The credentials of the sandbox apps at ``base``."""
    return sandbox_apps(_TOKENS[base])


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
    options.setdefault("control_token", _token_for_new_sandbox())
    app = create_sandbox_app(public_base=base, **options)
    _TOKENS[base] = app.state.control_token
    try:
        with serving(app, port):
            yield base, app
    finally:
        _TOKENS.pop(base, None)


@contextmanager
def sandbox_process(
    time_scale: float = 1.0, seed: int = 42, hub_port: int | None = None
) -> Iterator[str]:
    """The sandbox in its own process (``hub sandbox serve``), so a benchmark measures the
    hub's process alone; yields its base URL. With ``hub_port`` it registers the callbacks of
    a hub on http://localhost:{hub_port} (``hub sandbox serve`` registers the hub's own)."""
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    token = _token_for_new_sandbox()
    from connectors.sandbox.app import DEFAULT_REDIRECT_URI

    process = subprocess.Popen(  # our own CLI
        [sys.executable, "-m", "dashboard.cli", "sandbox", "serve", "--port", str(port),
         "--time-scale", str(time_scale), "--seed", str(seed),
         # The installer's callback (shopify_install, amazon_install), beside the hub's.
         "--redirect-uri", DEFAULT_REDIRECT_URI],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "HUB_SANDBOX_CONTROL_TOKEN": token,
             **({"HUB_PORT": str(hub_port)} if hub_port else {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _TOKENS[base] = token
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts it slowly
        while True:
            try:
                httpx.get(
                    f"{base}/_sandbox/amazon/stats", headers=control_headers(token), timeout=1
                ).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        _TOKENS.pop(base, None)
        process.terminate()
        process.wait(timeout=10)


async def shopify_consent(
    client: httpx.AsyncClient, url: str, params: dict[str, str], decision: str = "approve"
) -> httpx.Response:
    """The merchant's click on the sandbox's Shopify consent page at ``url``: ``decision``
    (approve: **Install app**, or **Create store and install app** when the sandbox has no
    store of that name)."""
    page = await client.get(url, params=params)
    if decision == "approve" and "Create store" in page.text:
        decision = "create"  # the store does not exist yet: create it and install
    return await client.post(url, data={**form_fields(page.text), "decision": decision})


def shopify_install(base: str, shop: str, *, scopes: str = "read_products") -> str:
    """Approve the sandbox app on ``shop`` and return an access token (test set-up only)."""
    with httpx.Client(base_url=base) as client:
        return str(install_shopify(client, shop, apps(base), scopes=scopes)["access_token"])


def amazon_install(base: str, seller: str, region: str = "na") -> str:
    """Authorize the sandbox app for ``seller`` and return its refresh token (set-up only)."""
    with httpx.Client(base_url=base) as client:
        return install_amazon(client, seller, apps(base), region)
