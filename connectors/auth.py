"""OAuth 2 tokens for every platform, through authlib's httpx client.

authlib speaks the protocol: each grant's form fields with the app's client credentials in
the body (``client_secret_post``: Shopify and Login with Amazon take them there, never as
``Authorization: Basic``), the refresh grant with its ``update_token`` hook, and the expiry
test with its leeway. Around it this module keeps what the hub promises: one mapping from a
token endpoint's answers to the typed errors of ``connectors.errors``, retries of transient
failures, no token or secret in any message, and ``TokenFlow``: the ``httpx.Auth`` that puts
a platform's token header on each request and refreshes it once at a time across processes,
saving the new pair before it is used.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc6749 import OAuth2Token

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 fork and warns once when it uses httpx, the stack's
    # client (whose transports the sandbox and respx provide): that is the choice, not news.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from connectors.base import CredentialStore, StoredCredential
from connectors.errors import (
    AuthRevoked,
    OAuthError,
    PlatformError,
    RateLimited,
    TransientError,
)
from connectors.http import (
    DEFAULT_TIMEOUT,
    EVENT_HOOKS,
    USER_AGENT,
    is_transient_status,
    with_retries,
)
from connectors.metrics import TOKEN_REFRESHES

log = logging.getLogger("hub.tokens")

ACCESS_TOKEN = "access_token"  # noqa: S105  credential kind names, not secrets
REFRESH_TOKEN = "refresh_token"  # noqa: S105
LEEWAY = 60  # seconds; authlib's default: a token this close to its expiry is refreshed first

TokenCredentials = Callable[[Mapping[str, Any]], list[StoredCredential]]
"""A platform's reading of a token endpoint answer: the credentials to store."""


@dataclass(frozen=True, slots=True)
class TokenEndpoint:
    """A platform's token endpoint and the app's client credentials."""

    name: str  # "Shopify", "Login with Amazon": who answered, in messages
    url: str
    client_id: str
    client_secret: str = field(repr=False)
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    # During a client secret rotation: the secret being replaced, tried when the endpoint
    # refuses ``client_secret`` as ``invalid_client`` (Amazon keeps the old one seven days).
    previous_secret: str | None = field(default=None, repr=False)


class _Refused(Exception):
    """A token endpoint's error answer, before the caller's grant gives it a type."""

    def __init__(self, error: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def _checked_answer(endpoint: TokenEndpoint, response: httpx.Response) -> httpx.Response:
    """authlib's compliance hook: only a JSON object with an access token goes on to authlib.

    Throttling and server errors become the retryable types here, before authlib would read a
    gateway's error page; a malformed success is refused before ``update_token`` could save it.
    """
    status = response.status_code
    if status == 429:
        raise RateLimited(
            f"{endpoint.name} token endpoint throttled the hub (429)",
            retry_after=_seconds(response.headers.get("Retry-After")),
        )
    if is_transient_status(status):
        raise TransientError(f"{endpoint.name} token endpoint answered {status}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        raise _Refused(error if isinstance(error, str) else f"HTTP {status}", status)
    problem = _token_problem(body)
    if problem:
        raise _Refused(f"malformed answer: {problem}", status)
    return response


def _token_problem(body: object) -> str | None:
    if not isinstance(body, dict):
        return "not a JSON object"
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        return "no access token"
    if "refresh_token" in body and not isinstance(body["refresh_token"], str):
        return "refresh token is not a string"
    for name in ("expires_in", "refresh_token_expires_in"):
        if body.get(name) is not None and _whole_seconds(body[name]) is None:
            return f"{name} is not a number of seconds"
    return None


def _whole_seconds(value: object) -> int | None:
    """A lifetime as authlib reads it (``int(expires_in)``), or None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        seconds = int(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 10**9 else None


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]  # anything else is None below
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < 10**9 else None


def _client(endpoint: TokenEndpoint, **kwargs: Any) -> AsyncOAuth2Client:
    client = AsyncOAuth2Client(
        client_id=endpoint.client_id,
        client_secret=endpoint.client_secret,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106  a method's name
        token_endpoint=endpoint.url,
        leeway=LEEWAY,
        transport=endpoint.transport,
        headers={"User-Agent": USER_AGENT},
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        event_hooks=EVENT_HOOKS,
        **kwargs,
    )
    for hook in ("access_token_response", "refresh_token_response"):
        client.register_compliance_hook(hook, lambda r: _checked_answer(endpoint, r))
    return client


async def _call_token_endpoint(
    endpoint: TokenEndpoint, call: Callable[[AsyncOAuth2Client], Any], **client_kwargs: Any
) -> OAuth2Token:
    """``call`` (a grant on authlib's client), retried like any platform call (the official
    SP-API helper retries three times with exponential backoff); network errors become
    TransientError. Error messages name the endpoint and the error code, never a value sent."""

    async def attempt() -> OAuth2Token:
        async with _client(endpoint, **client_kwargs) as client:
            token: OAuth2Token = await call(client)
            return token

    try:
        try:
            return await with_retries(attempt, attempts=3, initial_wait=1.0, max_elapsed=30)
        except _Refused as refused:
            if refused.error != "invalid_client" or not endpoint.previous_secret:
                raise
            # No downtime while a new secret is not active yet: the previous one answers.
            log.warning(
                "%s refused the client secret (invalid_client); the previous secret is tried: "
                "finish the rotation (docs/amazon.md, hub amazon rotate-secret)",
                endpoint.name,
            )
            previous = replace(endpoint, client_secret=endpoint.previous_secret,
                               previous_secret=None)  # fmt: skip
            return await _call_token_endpoint(previous, call, **client_kwargs)
    except httpx.TransportError as error:
        raise TransientError(
            f"{endpoint.name} token endpoint unreachable: {type(error).__name__}"
        ) from None
    except AuthlibBaseError as error:  # refused before sending (a missing code, ...)
        raise _Refused(str(error.error or type(error).__name__), 0) from None


async def fetch_token(
    endpoint: TokenEndpoint, *, grant_type: str, refused: str, **params: str
) -> OAuth2Token:
    """A token for a grant (``authorization_code``, ``client_credentials``).

    Any refusal, or an answer without a usable access token, is an OAuthError whose
    ``user_message`` is ``refused``: these grants run while someone waits for the answer.
    """
    try:
        return await _call_token_endpoint(
            endpoint, lambda client: client.fetch_token(grant_type=grant_type, **params)
        )
    except _Refused as error:
        raise OAuthError(
            f"{endpoint.name} refused the {grant_type} grant: {error.error}",
            user_message=refused,
        ) from None


async def refresh_token(
    endpoint: TokenEndpoint,
    refresh: str,
    *,
    update_token: Callable[..., Any] | None = None,
) -> OAuth2Token:
    """A new access token from ``refresh``; authlib hands it to ``update_token`` first.

    ``invalid_grant`` (revoked, expired or already rotated) is AuthRevoked: the merchant must
    connect again. Any other refusal or a malformed answer is a PlatformError: the sync fails
    with the reason and retrying will not fix it.
    """
    try:
        token = await _call_token_endpoint(
            endpoint,
            lambda client: client.refresh_token(endpoint.url, refresh_token=refresh),
            update_token=update_token,
        )
    except _Refused as error:
        revoked = error.error == "invalid_grant"
        TOKEN_REFRESHES.labels(endpoint.name, "revoked" if revoked else "failed").inc()
        if revoked:
            raise AuthRevoked(
                f"{endpoint.name} refused the refresh token (invalid_grant)"
            ) from None
        raise PlatformError(
            f"{endpoint.name} token refresh failed: {error.error}", status=error.status or None
        ) from None
    except Exception:
        TOKEN_REFRESHES.labels(endpoint.name, "failed").inc()  # unreachable, throttled, ...
        raise
    TOKEN_REFRESHES.labels(endpoint.name, "ok").inc()
    return token


def lifetime_end(body: Mapping[str, Any], name: str) -> datetime | None:
    """When the lifetime ``name`` of a (checked) token answer ends; None when it has none."""
    seconds = _whole_seconds(body.get(name))
    return None if seconds is None else datetime.now(UTC) + timedelta(seconds=seconds)


def _usable(token: StoredCredential | None, rejected: str | None) -> bool:
    if token is None or token.secret == rejected:
        return False
    if token.expires_at is None:
        return True  # a non-expiring token (Shopify's offline tokens without expiring=1)
    expiry = OAuth2Token({"access_token": token.secret, "expires_at": token.expires_at.timestamp()})
    return not expiry.is_expired(leeway=LEEWAY)


class TokenFlow(httpx.Auth):
    """Puts the integration's access token in ``header`` on every request.

    A token within the leeway of its expiry is refreshed before the request; an answer that
    ``rejects`` (Shopify: 401; SP-API: 403 "expired") refreshes once and sends the request
    again. Refreshes run one at a time across processes (the store's refresh lock); the one
    that waited finds the winner's token and sends nothing. The new pair (Shopify rotates
    refresh tokens) is saved together, in ``update_token``, before it is used.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        credentials: CredentialStore,
        *,
        header: str,
        credentials_of: TokenCredentials,
        rejects: Callable[[httpx.Response], bool] = lambda r: r.status_code == 401,
    ) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.header = header
        self.credentials_of = credentials_of
        self.rejects = rejects
        self._current: StoredCredential | None = None

    async def access_token(self, rejected: str | None = None) -> str:
        """A usable access token; ``rejected`` is one the platform just refused."""
        if not _usable(self._current, rejected):
            self._current = await self.credentials.get(ACCESS_TOKEN)
        if not _usable(self._current, rejected):
            self._current = await self._refresh(rejected)
        assert self._current is not None
        return self._current.secret

    async def _refresh(self, rejected: str | None) -> StoredCredential:
        async with self.credentials.refresh_lock(ACCESS_TOKEN):
            stored = await self.credentials.get(ACCESS_TOKEN)  # another process may have won
            if _usable(stored, rejected):
                assert stored is not None
                return stored
            refresh = await self.credentials.get(REFRESH_TOKEN)
            if refresh is None:
                state = "refused" if rejected else ("expired" if stored else "not stored")
                raise AuthRevoked(
                    f"{self.endpoint.name}: the access token is {state} and there is no "
                    "refresh token: connect again"
                )
            saved: list[StoredCredential] = []

            async def update_token(token: OAuth2Token, **_: Any) -> None:
                saved[:] = self.credentials_of(token)
                await self.credentials.save(*saved)  # both tokens, one transaction

            await refresh_token(self.endpoint, refresh.secret, update_token=update_token)
            return next(c for c in saved if c.kind == ACCESS_TOKEN)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers[self.header] = token
        response = yield request
        await response.aread()  # the SP-API says "expired" in the body
        if self.rejects(response):
            request.headers[self.header] = await self.access_token(rejected=token)
            yield request
