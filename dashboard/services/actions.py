"""Which actions an integration, one of its streams and a run offer: one rule, read by the
pages to show only those buttons and by every handler to refuse the others on the server.

The rule is a function of the thing's state and the person's role, nothing else:

============== ============================================================================
status         a manager may
============== ============================================================================
pending        connect (in this browser), send a connect link, edit
connected      sync, pause, reconnect, send a reconnect link, disconnect, edit
syncing, error the same as connected
paused         resume, reconnect, send a reconnect link, disconnect, edit
needs_reauth   reconnect, send a reconnect link, disconnect, edit
disconnected   reconnect, send a reconnect link, edit
============== ============================================================================

An admin may also delete, in every status; a viewer may do none of them. A never-connected
(pending) integration has no tokens, runs or schedule: nothing to sync, pause, resync or
reconnect. A stream syncs only while its integration may and it is on; a run is cancelled
while queued or running, and retried once, when it failed, was interrupted or cancelled.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlmodel import Session, col, select

from dashboard.models import Integration, IntegrationStatus, Role, RunStatus, StreamConfig, SyncRun
from dashboard.services.sync_queue import RETRYABLE, SYNCABLE


class Action(StrEnum):
    # the integration's
    CONNECT = "connect"
    CONNECT_LINK = "connect_link"
    RECONNECT = "reconnect"
    RECONNECT_LINK = "reconnect_link"
    SYNC = "sync"
    PAUSE = "pause"
    RESUME = "resume"
    DISCONNECT = "disconnect"
    DELETE = "delete"
    EDIT = "edit"
    # a stream's (SYNC, PAUSE and RESUME too)
    FULL_RESYNC = "full_resync"
    # a run's
    CANCEL = "cancel"
    RETRY = "retry"


class ActionRefused(Exception):
    """The action is not one the thing's state (or the person's role) allows now."""


PENDING = IntegrationStatus.PENDING.value
PAUSED = IntegrationStatus.PAUSED.value
DISCONNECTED = IntegrationStatus.DISCONNECTED.value

# What each status allows a manager; an admin adds DELETE.
_BY_STATUS: dict[str, frozenset[Action]] = {
    PENDING: frozenset({Action.CONNECT, Action.CONNECT_LINK, Action.EDIT}),
    **dict.fromkeys(
        SYNCABLE,
        frozenset(
            {
                Action.SYNC,
                Action.PAUSE,
                Action.RECONNECT,
                Action.RECONNECT_LINK,
                Action.DISCONNECT,
                Action.EDIT,
            }
        ),
    ),
    PAUSED: frozenset(
        {Action.RESUME, Action.RECONNECT, Action.RECONNECT_LINK, Action.DISCONNECT, Action.EDIT}
    ),
    IntegrationStatus.NEEDS_REAUTH.value: frozenset(
        {Action.RECONNECT, Action.RECONNECT_LINK, Action.DISCONNECT, Action.EDIT}
    ),
    DISCONNECTED: frozenset({Action.RECONNECT, Action.RECONNECT_LINK, Action.EDIT}),
}


def _manages(role: str) -> bool:
    return role in (Role.MANAGER.value, Role.ADMIN.value)


def integration_actions(*, status: str, role: str) -> frozenset[Action]:
    """What the integration offers this role in this status (the table above)."""
    if not _manages(role):
        return frozenset()
    allowed = _BY_STATUS.get(status, frozenset({Action.EDIT}))
    return allowed | {Action.DELETE} if role == Role.ADMIN.value else allowed


def stream_actions(*, status: str, role: str, enabled: bool, paused: bool) -> frozenset[Action]:
    """What one stream offers: sync and full resync while its integration may sync and the
    stream is on; pause or resume while the integration holds its access (not pending, not
    disconnected)."""
    if not _manages(role) or not enabled:
        return frozenset()
    allowed: set[Action] = set()
    if status in SYNCABLE:
        allowed |= {Action.SYNC, Action.FULL_RESYNC}
    if status not in (PENDING, DISCONNECTED):
        allowed.add(Action.RESUME if paused else Action.PAUSE)
    return frozenset(allowed)


def run_actions(
    *, run_status: str, retried: bool, cancel_requested: bool, status: str, role: str
) -> frozenset[Action]:
    """What a run offers: cancel while queued or running (until asked); retry once, when it
    failed, was interrupted or cancelled and its integration may sync."""
    if not _manages(role):
        return frozenset()
    if run_status in (RunStatus.QUEUED.value, RunStatus.RUNNING.value):
        return frozenset() if cancel_requested else frozenset({Action.CANCEL})
    if run_status in RETRYABLE and not retried and status in SYNCABLE:
        return frozenset({Action.RETRY})
    return frozenset()


REFUSALS = {
    Action.SYNC: "It cannot sync now",
    Action.FULL_RESYNC: "It cannot sync now",
    Action.PAUSE: "There is nothing to pause",
    Action.RESUME: "There is nothing to resume",
    Action.CONNECT: "It was connected already: reconnect it instead",
    Action.CONNECT_LINK: "It was connected already: send a reconnect link instead",
    Action.RECONNECT: "It was never connected: connect it first",
    Action.RECONNECT_LINK: "It was never connected: send a connect link instead",
    Action.DISCONNECT: "It holds no access to disconnect",
    Action.CANCEL: "This run is not queued or running",
    Action.RETRY: "This run cannot be retried",
}


def refuse_unless(allowed: frozenset[Action], action: Action, *, status: str = "") -> None:
    """Raise ActionRefused, in words, when ``action`` is not in ``allowed``."""
    if action in allowed:
        return
    why = REFUSALS.get(action, "Not allowed")
    shown = status.replace("_", " ")
    raise ActionRefused(f"{why} (it is {shown})." if shown else f"{why}.")


# --- the same rule on the server, read from the rows as they are now ---------------------------


def _integration(session: Session, integration_id: uuid.UUID) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise ActionRefused("That integration no longer exists.")
    return integration


def check_integration_action(
    *, session: Session, integration_id: uuid.UUID, action: Action, role: str
) -> None:
    """Raise ActionRefused unless the integration, as stored now, offers ``action``."""
    status = _integration(session, integration_id).status
    refuse_unless(integration_actions(status=status, role=role), action, status=status)


def check_stream_action(
    *, session: Session, integration_id: uuid.UUID, stream: str, action: Action, role: str
) -> None:
    """Raise ActionRefused unless the stream, as stored now, offers ``action``."""
    status = _integration(session, integration_id).status
    config = session.exec(
        select(StreamConfig).where(
            col(StreamConfig.integration_id) == integration_id, col(StreamConfig.stream) == stream
        )
    ).first()
    if config is None:
        raise ActionRefused(f"This integration has no stream {stream!r}.")
    allowed = stream_actions(status=status, role=role, enabled=config.enabled, paused=config.paused)
    if action in allowed:
        return
    if not config.enabled:
        raise ActionRefused(f"{stream} is turned off: turn it on in Settings first.")
    refuse_unless(allowed, action, status=status)


def check_run_action(*, session: Session, run_id: uuid.UUID, action: Action, role: str) -> None:
    """Raise ActionRefused unless the run, as stored now, offers ``action``."""
    run = session.get(SyncRun, run_id)
    if run is None:
        raise ActionRefused("That run no longer exists.")
    status = _integration(session, run.integration_id).status
    allowed = run_actions(
        run_status=run.status, retried=run.resumed_by is not None,
        cancel_requested=run.cancel_requested, status=status, role=role,
    )  # fmt: skip
    if action in allowed:
        return
    if action == Action.RETRY and run.resumed_by is not None:
        raise ActionRefused("This run was retried already; its retry is the newer run above.")
    refuse_unless(allowed, action, status=run.status)
