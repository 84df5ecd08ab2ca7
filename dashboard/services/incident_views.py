"""What the screens read of incidents: the bell and the attention panel (open ones across
integrations), an integration's page (its own), and the row the alert webhook carries."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, func, select

from dashboard import routes
from dashboard.models import Incident, IncidentCause, IncidentStatus, Integration

# Incidents of an app itself (no integration): what they concern, where to act, the platform.
APP_INCIDENTS: dict[str, tuple[str, str, str]] = {
    IncidentCause.LWA_SECRET_EXPIRING.value: ("Amazon app", routes.AMAZON_APP, "amazon"),
}


def _app_incident(incident: Incident) -> tuple[str, str, str]:
    return APP_INCIDENTS.get(incident.cause, ("The hub", routes.SETTINGS, ""))


def app_subject(incident: Incident) -> str:
    """What an incident of the app itself (no integration) concerns, in words."""
    return _app_incident(incident)[0]


def incident_row(incident: Incident, integration: Integration | None) -> dict[str, Any]:
    """One incident as the screens and the alert webhook read it; ``href`` is where to act
    (the integration's page, or the app's settings page for an incident of the app)."""
    if incident.integration_id is None:
        subject, href, platform = _app_incident(incident)
    else:
        subject = integration.display_name if integration else ""
        platform = integration.platform if integration else ""
        href = routes.integration_detail(str(incident.integration_id))
    return {
        "id": str(incident.id),
        "integration_id": str(incident.integration_id or ""),
        "integration": subject,
        "href": href,
        "platform": platform,
        "cause": incident.cause,
        "category": incident.category or "",
        "status": incident.status,
        "title": incident.title,
        "advice": incident.advice,
        "text": f"{incident.title} — {incident.advice}" if incident.advice else incident.title,
        "latest_error": incident.latest_error or "",
        "streams": list(incident.streams),
        "stream_count": len(incident.streams),
        "occurrences": incident.occurrences,
        "opened_at": incident.opened_at.isoformat(),
        "last_seen_at": incident.last_seen_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else "",
        "resolution": incident.resolution or "",
    }


def list_incidents(
    *,
    session: Session,
    status: str = IncidentStatus.OPEN.value,
    integration_id: uuid.UUID | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Incidents (open ones by default), latest seen first: the bell and the attention panel
    (all integrations) or an integration's page (one)."""
    statement = select(Incident, Integration).join(
        Integration, col(Integration.id) == col(Incident.integration_id), isouter=True
    )
    if status:
        statement = statement.where(Incident.status == status)
    if integration_id is not None:
        statement = statement.where(Incident.integration_id == integration_id)
    statement = statement.order_by(col(Incident.last_seen_at).desc(), col(Incident.id)).limit(limit)
    rows = session.exec(statement).all()
    return [incident_row(incident, integration) for incident, integration in rows]


def open_count(*, session: Session, integration_id: uuid.UUID | None = None) -> int:
    statement = (
        select(func.count())
        .select_from(Incident)
        .where(Incident.status == IncidentStatus.OPEN.value)
    )
    if integration_id is not None:
        statement = statement.where(Incident.integration_id == integration_id)
    return int(session.exec(statement).one())
