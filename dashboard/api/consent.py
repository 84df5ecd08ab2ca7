"""The start of every platform's connect flow (who may start it, then off to the consent
page) and the page after a cancel there.

Each platform's route module gives only how its consent URL is built.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.errors import InvalidInput
from dashboard.api.result_page import result_page
from dashboard.db import in_session
from dashboard.models import Integration
from dashboard.services import audit, connect
from dashboard.settings import get_settings


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


async def consent_cancelled(
    *,
    platform: str,
    platform_label: str,
    integration_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
) -> Response:
    """The platform sent the browser back because its consent page was cancelled: say that
    nothing was connected, note it in the audit log, and show the way back (a manager to the
    integration's page; a merchant to the link they were sent, which still works)."""

    def note(session: Session) -> str:
        integration = session.get(Integration, integration_id) if integration_id else None
        if integration is None:
            return ""
        audit.record_audit(
            session=session,
            actor=audit.actor_of(session=session, user_id=user_id),
            action="integration.consent_cancelled",
            target=str(integration.id),
            context={"platform": platform_label},
        )
        return integration.display_name

    name = await in_session(note)
    settings = get_settings()
    if user_id is not None and integration_id is not None and name:
        return result_page(
            "Connection cancelled",
            f"You cancelled on {platform_label}'s page, so nothing was connected. {name} "
            "stays as it was: connect it from its page when you are ready.",
            ok=False,
            action=(f"Back to {name}", f"{settings.public_url}/integrations/{integration_id}"),
        )
    return result_page(
        "Connection cancelled",
        f"You cancelled on {platform_label}'s page, so nothing was shared with "
        f"{settings.org_name} and nothing was connected. Changed your mind? Open the link you "
        "were sent again: it works until it expires.",
        ok=False,
    )
