"""Who may call each HTTP route, declared with the route rather than left to its body.

Every route of the hub is built with ``route(path, endpoint, methods=..., access=...)``;
``tests/security/test_route_guards.py`` walks the hub's app and fails on a route built any
other way, so a new entry point cannot ship without saying who may call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from starlette.routing import BaseRoute, Route


class Access(StrEnum):
    """Who may call a route, and what the route checks before it reads or changes anything."""

    # Anyone: answers nothing worth protecting (liveness, readiness).
    PUBLIC = "public"
    # The platform: an HMAC over the request with the app's secret, verified first.
    PLATFORM_SIGNED = "platform_signed"
    # The browser coming back from a platform's consent page: a single-use state the hub
    # minted (and the platform's signature of the query, where the platform signs it).
    OAUTH_STATE = "oauth_state"
    # A signed-in manager, or the merchant holding a valid connect link.
    SESSION_OR_LINK = "session_or_link"
    # A signed-in user of the hub.
    SESSION = "session"
    # Sign-in and sign-out: a form posted from the hub's own origin (refused otherwise), the
    # password checked under the sign-in throttle, or the caller's own session ended.
    SAME_ORIGIN_FORM = "same_origin_form"
    # A monitoring system: ``Authorization: Bearer`` with the metrics token (HUB_METRICS_TOKEN
    # or the one generated into the data dir), compared in constant time; or a client of the
    # Hub API (/api/v1) with an API key, its scopes and integration allow-list checked first.
    BEARER_TOKEN = "bearer_token"  # noqa: S105  an access kind, not a token


class GuardedRoute(Route):
    """A Starlette route that carries its ``access`` declaration."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str],
        access: Access,
    ) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.access = access


def route(
    path: str, endpoint: Callable[..., Any], *, methods: Sequence[str], access: Access
) -> GuardedRoute:
    """The one way to declare an HTTP entry point of the hub."""
    return GuardedRoute(path, endpoint, methods=methods, access=access)


def access_of(entry: BaseRoute) -> Access | None:
    """The route's declared access; None for a route built without ``route`` (or, in the Hub
    API, without its ``KeyRoute`` class, which declares it the same way)."""
    access = getattr(entry, "access", None)
    return access if isinstance(access, Access) else None
