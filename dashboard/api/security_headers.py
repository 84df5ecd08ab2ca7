"""Security headers on every HTTP response of the hub: pages, assets, routes, the sandbox.

- ``Content-Security-Policy``: scripts only from the hub itself plus, on an HTML page, the
  inline scripts that page was built with, allowed by their SHA-256 (Reflex's production
  build inlines a theme script and React Router's context, different per page). Injected
  markup therefore runs no script. ``'unsafe-eval'`` stays because Reflex runs
  ``rx.call_script`` through ``eval``; inline styles stay because Emotion and Radix write
  them. ``frame-ancestors 'none'`` (with ``X-Frame-Options: DENY`` for old browsers): no
  page, ``/connect/<token>`` included, can be framed for clickjacking.
- ``Referrer-Policy: same-origin``: a connect link's token never leaves in a Referer to
  Shopify, Amazon or anyone else; same-origin posts keep their ``Origin`` header, which the
  sign-in route checks (``no-referrer`` would turn it into ``Origin: null``).
- ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from urllib.parse import urlsplit

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_MAX_HTML = 4 * 1024 * 1024  # pages are a few kB; beyond this, pass through unhashed


def _script_hashes(html: bytes) -> list[str]:
    hashes = []
    for body in _INLINE_SCRIPT.findall(html):
        if body:
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            hashes.append(f"'sha256-{digest}'")
    return sorted(set(hashes))


def _decoded(body: bytes, encoding: str) -> bytes | None:
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return zlib.decompress(body)
    except zlib.error:
        return None
    return None  # br, zstd: not produced by the build we serve


def content_security_policy(public_url: str, script_hashes: list[str]) -> str:
    parts = urlsplit(public_url)
    socket_origin = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    scripts = " ".join(["'self'", "'unsafe-eval'", *script_hashes])
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        f"connect-src 'self' {socket_origin}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])  # fmt: skip


class SecurityHeadersMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): websockets pass untouched, bodies are buffered
    only for HTML pages, whose inline scripts must be hashed before the headers go out."""

    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.public_url = public_url

    def _headers(self, existing: list[tuple[bytes, bytes]], hashes: list[str] | None) -> list:
        present = {name.lower() for name, _ in existing}
        extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]
        if hashes is not None:
            policy = content_security_policy(self.public_url, hashes)
            extra.append((b"content-security-policy", policy.encode()))
        return existing + [(name, value) for name, value in extra if name not in present]

    def _released(self, start: Message, body: bytes) -> Message:
        """The held response start, with the policy allowing ``body``'s inline scripts."""
        headers = list(start.get("headers", []))
        encoding = dict(headers).get(b"content-encoding", b"").decode().lower()
        html = _decoded(body, encoding)
        hashes = _script_hashes(html) if html is not None else []
        return {**start, "headers": self._headers(headers, hashes=hashes)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal start, size
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                if message["status"] == 304:
                    # The cached response keeps its own policy (hashes of its own scripts).
                    message["headers"] = self._headers(headers, hashes=None)
                elif content_type.startswith(b"text/html"):
                    start = message  # held until the body is known
                    return
                else:
                    message["headers"] = self._headers(headers, hashes=[])
                await send(message)
                return
            if message["type"] == "http.response.pathsend" and start is not None:
                # Granian sends files itself (the pathsend extension): hash the file, then
                # let the server send it as it would have.
                html = await anyio.Path(message["path"]).read_bytes()
                await send(self._released(start, html))
                start = None
                await send(message)
                return
            if message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if message.get("more_body", False) and size <= _MAX_HTML:
                    return
                body = b"".join(chunks)
                await send(self._released(start, body))
                start = None
                await send({**message, "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)
