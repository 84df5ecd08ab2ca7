"""The start of every platform's connect flow: who may start it, then off to the consent page.

Each platform's route module gives only how its consent URL is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.errors import InvalidInput
from dashboard.api.result_page import result_page
from dashboard.services import connect


async def redirect_to_consent(
    request: Request,
    platform: str,
    consent_url: Callable[[connect.ConnectStart], str | Awaitable[str]],
) -> Response:
    """Issue a single-use state for the manager or the connect link, then redirect."""
    try:
        started = await connect.start_connection(
            platform=platform,
            integration_id=request.query_params.get("integration"),
            link_token=request.query_params.get("link"),
            session_token=request.cookies.get("hub_session"),
        )
        url = consent_url(started)
        if inspect.isawaitable(url):  # the platform looks something up (the integration's app)
            url = await url
    except connect.StartRefused as refused:
        return result_page("This link cannot be used", str(refused), ok=False, status=403)
    except InvalidInput as invalid:
        return result_page("This account cannot be connected", str(invalid), ok=False, status=400)
    return RedirectResponse(url, status_code=302)
