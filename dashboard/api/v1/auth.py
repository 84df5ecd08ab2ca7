"""Who calls /api/v1: the API key in ``Authorization: Bearer``, its rate limit, its scopes
and its integration allow-list, checked before any route reads or changes anything."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dashboard.api.v1.errors import ApiError
from dashboard.db import in_session
from dashboard.services import api_keys
from dashboard.services.api_keys import ApiClient

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A hub API key (chk_...), made in Settings -> API keys or `hub apikeys create`.",
)


async def api_client(
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> ApiClient:
    presented = credentials.credentials.strip() if credentials else ""
    if not presented:
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <API key>",
            {"WWW-Authenticate": 'Bearer realm="hub-api"'},
        )
    client = api_keys.cached_client(presented)
    if client is None:
        # Read first: a revocation committed while we check makes this check stale.
        revocations = api_keys.revocations_seen()
        client = await in_session(
            lambda session: api_keys.authenticate(session=session, presented=presented)
        )
        if client is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown or revoked API key",
                {"WWW-Authenticate": 'Bearer realm="hub-api"'},
            )
        api_keys.remember_client(presented, client, revocations)
    wait = await api_keys.RATE_LIMITER.retry_after(client)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"this key may make {client.rate_limit_per_minute} requests a minute",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return client


def scoped(scope: str) -> Callable[..., Awaitable[ApiClient]]:
    """A dependency: the calling key, refused (403) unless it holds ``scope``."""
    if scope not in api_keys.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(client: ApiClient = Depends(api_client)) -> ApiClient:
        if scope not in client.scopes:
            raise ApiError(403, "insufficient_scope", f"this API key lacks the {scope} scope")
        return client

    return check


def require_integration(client: ApiClient, integration_id: uuid.UUID) -> None:
    """Refuse an integration outside the key's allow-list."""
    if not client.may_reach(integration_id):
        raise ApiError(
            403, "integration_not_allowed", "this API key may not reach that integration"
        )
