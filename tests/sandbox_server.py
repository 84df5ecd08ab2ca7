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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_sandbox(**options: Any) -> Iterator[tuple[str, Any]]:
    """Yields (base URL, sandbox app) while a uvicorn server serves it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_sandbox_app(public_base=base, **options)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox did not start")
        time.sleep(0.02)
    try:
        yield base, app
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def shopify_install(base: str, shop: str, *, scopes: str = "read_products") -> str:
    """Approve the sandbox app on ``shop`` and return an access token (test set-up only)."""
    from urllib.parse import parse_qs, urlparse

    with httpx.Client(base_url=base) as client:
        response = client.post(
            f"/shopify/{shop}/admin/oauth/authorize",
            data={
                "client_id": "sandbox-shopify-client-id",
                "scope": scopes,
                "redirect_uri": "http://hub/cb",
                "state": "s",
                "decision": "approve",
            },
        )
        code = parse_qs(urlparse(response.headers["location"]).query)["code"][0]
        token = client.post(
            f"/shopify/{shop}/admin/oauth/access_token",
            json={
                "client_id": "sandbox-shopify-client-id",
                "client_secret": "sandbox-shopify-client-secret",
                "code": code,
            },
        )
        return str(token.json()["access_token"])


AMAZON_APP = {
    "app_id": "amzn1.sp.solution.sandbox-app",
    "client_id": "amzn1.application-oa2-client.sandbox",
    "client_secret": "sandbox-amazon-client-secret",
}


def amazon_install(base: str, seller: str, region: str = "na") -> str:
    """Authorize the sandbox app for ``seller`` and return its refresh token (set-up only)."""
    from urllib.parse import parse_qs, urlparse

    with httpx.Client(base_url=base) as client:
        response = client.post(
            f"/amazon/sellercentral/{region}/apps/authorize/consent",
            params={
                "application_id": AMAZON_APP["app_id"],
                "state": "s",
                "redirect_uri": "http://hub/cb",
            },
            data={"decision": "approve", "selling_partner_id": seller},
        )
        code = parse_qs(urlparse(response.headers["location"]).query)["spapi_oauth_code"][0]
        token = client.post(
            "/amazon/lwa/auth/o2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://hub/cb",
                "client_id": AMAZON_APP["client_id"],
                "client_secret": AMAZON_APP["client_secret"],
            },
        )
        return str(token.json()["refresh_token"])
