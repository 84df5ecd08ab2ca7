"""``GET /metrics``: Prometheus's scrape, for a monitoring system holding the metrics token.

The token is ``HUB_METRICS_TOKEN`` or, when unset, the one the hub generates into
``{data_dir}/metrics.token`` (0600): docs/monitoring.md shows the scrape configuration.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from dashboard.api.access import Access, route
from dashboard.services import metrics


async def scrape(request: Request) -> Response:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    # The token file is read (created on first use) off the event loop, as is the database.
    presented = presented.strip() if scheme.lower() == "bearer" else ""
    if not await asyncio.to_thread(metrics.token_matches, presented):
        return PlainTextResponse(
            "metrics need Authorization: Bearer <metrics token> (docs/monitoring.md)",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = await asyncio.to_thread(metrics.render)  # database reads
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


routes = [route("/metrics", scrape, methods=["GET"], access=Access.BEARER_TOKEN)]
