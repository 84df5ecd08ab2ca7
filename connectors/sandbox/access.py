"""Who may drive the sandbox: its control token, and the app credentials derived from it.

The control API (``/_sandbox/...``) changes what the platforms answer (faults, revocations,
app settings, seeded shops), so it answers only requests carrying the token as
``Authorization: Bearer <token>``. The sandbox apps' client secrets are derived from the
same token: a hub and its sandbox agree on them without another secret to pass around, and
nobody without the token can sign a callback or exchange a consent code.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

# The sandbox apps' public identifiers (like a real app's client id, they are no secret).
SHOPIFY_CLIENT_ID = "sandbox-shopify-client-id"
AMAZON_APP_ID = "amzn1.sp.solution.sandbox-app"
AMAZON_CLIENT_ID = "amzn1.application-oa2-client.sandbox"


@dataclass(frozen=True)
class SandboxApps:
    """The sandbox apps' credentials for one control token."""

    shopify_client_id: str
    shopify_client_secret: str
    amazon_app_id: str
    amazon_client_id: str
    amazon_client_secret: str


def _derived(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"sandbox:{purpose}".encode(), hashlib.sha256).hexdigest()


def sandbox_apps(control_token: str) -> SandboxApps:
    """The sandbox apps' credentials for ``control_token``: the same token, the same
    secrets, in the hub and in the sandbox it talks to."""
    return SandboxApps(
        shopify_client_id=SHOPIFY_CLIENT_ID,
        shopify_client_secret="shpss_" + _derived(control_token, "shopify")[:32],
        amazon_app_id=AMAZON_APP_ID,
        amazon_client_id=AMAZON_CLIENT_ID,
        amazon_client_secret="amzn1.oa2-cs.v1." + _derived(control_token, "amazon"),
    )


def new_control_token() -> str:
    return secrets.token_urlsafe(32)


def load_or_create_token(path: Path) -> str:
    """The token kept in ``path``, created (mode 0600, in a 0700 directory when the
    directory is new) with a random one on first use. Two processes starting at once agree:
    the file is created exclusively and the loser reads the winner's."""
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = new_control_token()
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip() or load_or_create_token(path)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token


class ControlTokenRequired:
    """ASGI wrapper of the control routes: 401 before the route runs unless the request
    carries ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": "the sandbox control API needs its token: Authorization: Bearer <token>"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="sandbox-control"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        return hmac.compare_digest(given, self.expected)
