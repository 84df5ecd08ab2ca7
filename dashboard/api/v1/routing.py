"""The route class of /api/v1: every path operation declares its access (an API key), so
tests/security/test_route_guards.py walks and checks them as every other hub route."""

from __future__ import annotations

from fastapi.routing import APIRoute

from dashboard.api.access import Access


class KeyRoute(APIRoute):
    """A path operation answering only a request with an API key (``Authorization: Bearer``)."""

    access = Access.BEARER_TOKEN
