"""Incidents: one per integration and cause, opened once, updated while it lasts, resolved
by itself when a run succeeds or access returns.

A failing stream's words come from ``incident_words`` (raw error -> category and plain
words: "Shopify answered 503 for 4 streams since 10:02 — the store's API is down or
overloaded; the hub retries every 15 min"); every other cause's words are data there too
(``CAUSES``). What the screens read is in ``incident_views``; the periodic looks in
``incident_sweeps``. The bell, the Overview's attention panel and the outgoing alert
webhook (``alerts.notify`` with kind ``incident_opened`` / ``incident_resolved``) come from
here, so one outage is one notification.

Every function runs inside the caller's transaction (the engine's, a webhook's, a route's).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from dashboard.db import dialect_insert
from dashboard.models import (
    Incident,
    IncidentCause,
    IncidentStatus,
    Integration,
)
from dashboard.services import alerts
from dashboard.services.incident_views import app_subject
from dashboard.services.incident_views import incident_row as incident_row
from dashboard.services.incident_views import list_incidents as list_incidents
from dashboard.services.incident_views import open_count as open_count
from dashboard.services.incident_words import CAUSES, hhmm, plural
from dashboard.services.incident_words import (
    PLATFORM_LABELS as PLATFORM_LABELS,
)
from dashboard.services.incident_words import (
    describe_failure as describe_failure,
)

# The `X as X` imports re-export what callers read here from the modules that hold it.

INCIDENTS: sa.Table = Incident.__table__  # type: ignore[attr-defined]


# --- opening, updating, resolving --------------------------------------------------------------


@functools.cache
def _insert_statement(dialect: str) -> sa.Executable:
    insert = dialect_insert(dialect)
    return insert(INCIDENTS).on_conflict_do_nothing().returning(INCIDENTS.c.id)


def open_incident(
    session: Session, integration_id: uuid.UUID | None, cause: IncidentCause, *, lock: bool = False
) -> Incident | None:
    """The open incident of ``cause`` (of the app itself when ``integration_id`` is None);
    ``lock`` holds its row until the transaction ends (PostgreSQL; SQLite's write lock
    already does), so concurrent runs update it in turn."""
    statement = select(Incident).where(
        Incident.integration_id == integration_id
        if integration_id is not None
        else col(Incident.integration_id).is_(None),
        Incident.cause == cause.value,
        Incident.status == IncidentStatus.OPEN.value,
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.exec(statement).first()


def _raise(
    session: Session,
    *,
    integration: Integration | None,
    cause: IncidentCause,
    title: str | Callable[[Incident], str],
    advice: str,
    error: str | None = None,
    category: str | None = None,
    stream: str | None = None,
    run_id: uuid.UUID | None = None,
) -> Incident:
    """Open the integration's incident of ``cause`` (the app's, for no integration), or
    update the open one (last seen, occurrences, latest error, affected streams). Emits
    ``incident_opened`` once.

    ``title`` may be a function of the incident as updated (its streams, its opening time).
    Concurrent callers (runs of several streams ending at once) are kept apart by the partial
    unique index (one insert wins) and the row lock (updates take turns).
    """
    now = datetime.now(UTC)
    integration_id = integration.id if integration is not None else None
    incident = open_incident(session, integration_id, cause, lock=True)
    if incident is None:
        candidate = Incident(
            integration_id=integration_id, cause=cause.value, category=category, title="",
            advice=advice, latest_error=(error or "")[:2000] or None,
            streams=[stream] if stream else [], opened_at=now, last_seen_at=now,
        )  # fmt: skip
        candidate.title = title(candidate) if callable(title) else title
        values = {column.name: getattr(candidate, column.name) for column in INCIDENTS.columns}
        statement = _insert_statement(session.get_bind().dialect.name)
        if session.execute(statement, values).scalar_one_or_none() is not None:
            incident = open_incident(session, integration_id, cause)
            assert incident is not None
            _emit(session, incident, integration, "incident_opened", run_id)
            return incident
        # Another transaction opened it meanwhile: update that one, in turn.
        incident = open_incident(session, integration_id, cause, lock=True)
        assert incident is not None
    incident.occurrences += 1
    incident.last_seen_at = now
    incident.category = category or incident.category
    if error:
        incident.latest_error = error[:2000]
    if stream and stream not in incident.streams:
        incident.streams = [*incident.streams, stream]
    incident.title = title(incident) if callable(title) else title
    incident.advice = advice
    session.add(incident)
    return incident


def _resolve(
    session: Session,
    incident: Incident,
    resolution: str,
    integration: Integration | None = None,
) -> None:
    incident.status = IncidentStatus.RESOLVED.value
    incident.resolved_at = datetime.now(UTC)
    incident.resolution = resolution[:500]
    session.add(incident)
    session.flush()
    if incident.integration_id is not None:
        integration = integration or session.get(Integration, incident.integration_id)
        if integration is None:
            return
    _emit(session, incident, integration, "incident_resolved", None)


def _emit(
    session: Session,
    incident: Incident,
    integration: Integration | None,
    kind: str,
    run_id: uuid.UUID | None,
) -> None:
    """The bell and the alert webhook, through the alerts service's public ``notify``."""
    name = integration.display_name if integration is not None else app_subject(incident)
    if kind == "incident_opened" and incident.cause == IncidentCause.ACCESS_LOST.value:
        # What to do comes first: this one needs a person (the merchant) to act.
        message = f"{name} needs to be reconnected: {incident.title}"
    elif kind == "incident_opened":
        message = f"{name}: {incident.title} — {incident.advice}"
    else:
        message = f"{name}: resolved: {incident.title} ({incident.resolution})"
    alerts.notify(
        session=session,
        kind=kind,
        message=message,
        integration_id=integration.id if integration is not None else None,
        run_id=run_id,
        incident=incident_row(incident, integration),
    )


# --- the causes ---------------------------------------------------------------------------------


def raise_cause(
    *,
    session: Session,
    integration: Integration,
    cause: IncidentCause,
    error: str | None = None,
    run_id: uuid.UUID | None = None,
    **values: object,
) -> Incident:
    """Open (or update) the integration's incident of a ``CAUSES`` cause, its words filled in
    with ``values``."""
    words = CAUSES[cause]
    fill = {
        "label": PLATFORM_LABELS.get(integration.platform, integration.platform),
        "shop": integration.shop_domain or "their shop",
        **values,
    }

    def title(incident: Incident) -> str:
        return words.title.format(since=hhmm(incident.opened_at), **fill)

    return _raise(
        session, integration=integration, cause=cause, title=title,
        advice=words.advice.format(**fill), error=error, category=words.category, run_id=run_id,
    )  # fmt: skip


def resolve_cause(
    *,
    session: Session,
    integration: Integration,
    cause: IncidentCause,
    resolution: str,
    stream: str | None = None,
) -> bool:
    """End the integration's open incident of ``cause``; with ``stream``, only that stream's
    part of it (resolved once no stream is left). True when an incident was resolved."""
    incident = open_incident(session, integration.id, cause, lock=True)
    if incident is None or (stream is not None and stream not in incident.streams):
        return False
    left = [name for name in incident.streams if name != stream]
    if stream is not None and left:
        incident.streams = left
        session.add(incident)
        return False
    _resolve(session, incident, resolution, integration)
    return True


def _integration(session: Session, integration_id: uuid.UUID) -> Integration | None:
    return session.get(Integration, integration_id)


# --- what the engine, the webhooks and the sweeps report ----------------------------------------


def stream_failed(
    *,
    session: Session,
    integration: Integration,
    stream: str,
    error: str,
    interval_minutes: int,
    run_id: uuid.UUID | None = None,
) -> Incident:
    """A run of ``stream`` failed: the integration's ``stream_failing`` incident counts it."""
    described = describe_failure(
        error, platform=integration.platform, interval_minutes=interval_minutes
    )

    def title(incident: Incident) -> str:
        streams = f"for {plural(len(incident.streams) or 1, 'stream')}"
        return f"{described.words} {streams} since {hhmm(incident.opened_at)}"

    return _raise(
        session, integration=integration, cause=IncidentCause.STREAM_FAILING, title=title,
        advice=described.advice, error=error, category=described.category, stream=stream,
        run_id=run_id,
    )  # fmt: skip


def stream_stalled(
    *, session: Session, integration: Integration, stream: str, reason: str
) -> Incident:
    label = PLATFORM_LABELS.get(integration.platform, integration.platform)

    def title(incident: Incident) -> str:
        streams = sorted(incident.streams)
        return f"{plural(len(streams), 'sync')} of {label} made no progress ({', '.join(streams)})"

    return _raise(
        session, integration=integration, cause=IncidentCause.STALLED, title=title,
        advice=f"{reason}; the hub keeps the run going and resolves this when it moves again",
        error=reason, category="stalled", stream=stream,
    )  # fmt: skip


def stream_succeeded(*, session: Session, integration: Integration, stream: str) -> None:
    """A run of ``stream`` succeeded: it no longer counts in a failing or stalled incident
    (resolved when no stream is left), and access evidently works again. Usually nothing is
    open: one SELECT reads and locks all three causes (in the order they were locked one by
    one before), not one per cause."""
    synced = f"{stream} synced at {hhmm(datetime.now(UTC))}"
    causes = [IncidentCause.STREAM_FAILING, IncidentCause.STALLED, IncidentCause.ACCESS_LOST]
    rank = sa.case({cause.value: n for n, cause in enumerate(causes)}, value=Incident.cause)
    statement = select(Incident).where(
        Incident.integration_id == integration.id,
        Incident.status == IncidentStatus.OPEN.value,
        col(Incident.cause).in_([cause.value for cause in causes]),
    )
    locked = statement.order_by(rank).with_for_update()
    found = {i.cause: i for i in session.exec(locked.execution_options(populate_existing=True))}
    for cause in causes[:2]:
        incident = found.get(cause.value)
        if incident is None or (incident.streams and stream not in incident.streams):
            continue
        left = [name for name in incident.streams if name != stream]
        if left:
            incident.streams = left
            incident.title = re.sub(
                r"for \d+ streams?", f"for {plural(len(left), 'stream')}", incident.title
            )
            session.add(incident)
            continue
        _resolve(session, incident, synced, integration)
    if (access := found.get(IncidentCause.ACCESS_LOST.value)) is not None:
        _resolve(session, access, f"{stream} synced again", integration)


def stream_moving(*, session: Session, integration: Integration, stream: str) -> None:
    """A stalled run stored a page again: it no longer counts as stalled."""
    resolve_cause(session=session, integration=integration, cause=IncidentCause.STALLED,
                  resolution=f"{stream} moved again", stream=stream)  # fmt: skip


def access_lost(
    *, session: Session, integration: Integration, error: str, run_id: uuid.UUID | None = None
) -> Incident:
    return raise_cause(session=session, integration=integration,
                       cause=IncidentCause.ACCESS_LOST, error=error, run_id=run_id)  # fmt: skip


def uninstalled(*, session: Session, integration_id: uuid.UUID) -> Incident | None:
    """The merchant removed the app (Shopify's ``app/uninstalled``)."""
    integration = _integration(session, integration_id)
    if integration is None:
        return None
    return raise_cause(session=session, integration=integration, cause=IncidentCause.UNINSTALLED)


def declined(*, session: Session, integration_id: uuid.UUID) -> Incident | None:
    """The merchant pressed Decline on a connect link."""
    integration = _integration(session, integration_id)
    if integration is None:
        return None
    return raise_cause(session=session, integration=integration, cause=IncidentCause.DECLINED)


def webhook_subscriptions_removed(
    *, session: Session, integration: Integration, topics: list[str], done: str
) -> Incident:
    """Webhook subscriptions the hub needs were gone from the shop (``topics``, as
    Shopify's header names them); ``done`` says what the hub did about it and what is left
    to do."""
    removed = (
        "A webhook subscription was"
        if len(topics) == 1
        else f"{len(topics)} webhook subscriptions were"
    )
    return raise_cause(
        session=session, integration=integration, cause=IncidentCause.WEBHOOK_SUBSCRIPTION_REMOVED,
        error=", ".join(topics), removed=removed, topics=", ".join(topics), done=done,
    )  # fmt: skip


def webhook_subscriptions_back(*, session: Session, integration: Integration) -> bool:
    """Every webhook subscription the hub needs is in place again."""
    return resolve_cause(
        session=session, integration=integration,
        cause=IncidentCause.WEBHOOK_SUBSCRIPTION_REMOVED,
        resolution=f"every webhook subscription was in place at {hhmm(datetime.now(UTC))}",
    )  # fmt: skip


def count_drift(
    *, session: Session, integration: Integration, stream: str, hub: int, platform: int
) -> Incident:
    """After a full pass the hub's count of ``stream`` strays from the platform's own."""
    label = PLATFORM_LABELS.get(integration.platform, integration.platform)
    missing = platform - hub
    gap = f"{missing:,} missing" if missing > 0 else f"{-missing:,} more than {label} has"
    return _raise(
        session, integration=integration, cause=IncidentCause.COUNT_DRIFT,
        title=f"{stream}: the hub holds {hub:,} records, {label} counts {platform:,} ({gap})",
        advice="run a full resync of the stream; if the gap stays, check its logs for "
        "skipped records",
        error=f"{stream}: hub {hub}, platform {platform}", category="count_drift", stream=stream,
    )  # fmt: skip


def count_matches(*, session: Session, integration: Integration, stream: str) -> None:
    """A full pass of ``stream`` ended within the threshold: it no longer drifts."""
    resolve_cause(
        session=session, integration=integration, cause=IncidentCause.COUNT_DRIFT,
        resolution=f"{stream} matches the platform's count again", stream=stream,
    )  # fmt: skip


def access_returned(*, session: Session, integration_id: uuid.UUID) -> None:
    """The integration is connected again: its access incidents are over."""
    integration = _integration(session, integration_id)
    if integration is None:
        return
    for cause in (
        IncidentCause.ACCESS_LOST,
        IncidentCause.UNINSTALLED,
        IncidentCause.DECLINED,
        IncidentCause.CONNECT_LINK_EXPIRED_UNUSED,
    ):
        resolve_cause(session=session, integration=integration, cause=cause,
                      resolution="connected again")  # fmt: skip


def lwa_secret_expiring(*, session: Session, deadline: datetime, now: datetime) -> Incident:
    """The app's LWA client secret nears Amazon's 180-day deadline: every SP-API call of
    every Amazon integration fails after it. One incident, for the app (no integration)."""
    days = max((deadline - now).days, 0)
    when = deadline.strftime("%d %b %Y")
    title = (
        f"The client secret must be rotated by {when} ({plural(days, 'day')} left)"
        if deadline > now
        else f"The client secret passed its 180 days on {when}: every Amazon integration fails"
    )
    words = CAUSES[IncidentCause.LWA_SECRET_EXPIRING]
    return _raise(
        session, integration=None, cause=IncidentCause.LWA_SECRET_EXPIRING, title=title,
        advice=words.advice, category=words.category,
    )  # fmt: skip


def lwa_secret_rotated(
    *, session: Session, resolution: str = "the client secret was rotated"
) -> None:
    """A secret far from its deadline is configured (or no integration uses it any more):
    the expiry incident is over."""
    for incident in session.exec(
        select(Incident).where(
            Incident.cause == IncidentCause.LWA_SECRET_EXPIRING.value,
            Incident.status == IncidentStatus.OPEN.value,
        )
    ).all():
        _resolve(session, incident, resolution)


def reauthorization_due(
    *, session: Session, integration: Integration, due: datetime, now: datetime
) -> Incident:
    """The seller's yearly authorization of the app ends at ``due``."""
    when = due.strftime("%d %b %Y")
    title = (
        f"The seller must re-authorize the app by {when}"
        if due > now
        else f"The seller's yearly authorization ended on {when}"
    )
    return raise_cause(session=session, integration=integration,
                       cause=IncidentCause.AMAZON_REAUTHORIZATION_DUE, title=title)  # fmt: skip


def reauthorized(*, session: Session, integration: Integration) -> None:
    """The seller authorized the app again: the year starts over."""
    resolve_cause(session=session, integration=integration,
                  cause=IncidentCause.AMAZON_REAUTHORIZATION_DUE,
                  resolution="the seller authorized the app again")  # fmt: skip
