"""The integration detail page's state: the integration, what its open tab shows, and the
manager's actions on it (sync, pause, links, rename, disconnect, delete)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import reflex as rx
from sqlmodel import Session

from connectors.amazon import regions as amazon_regions
from dashboard import routes
from dashboard.db import in_session
from dashboard.models import ConnectPurpose, Role
from dashboard.services import actions as rules
from dashboard.services import (
    completeness,
    health,
    incidents,
    integration_settings,
    integration_view,
    scheduler,
    sync,
    webhooks_view,
)
from dashboard.services import integrations as integration_service
from dashboard.services import runs as runs_service
from dashboard.services.integrations import NotFound
from dashboard.settings import get_settings
from dashboard.state.auth import AuthState, leave_app
from dashboard.state.guard import acting_user, not_an_event, requires
from dashboard.state.live import LiveState, assign_changed

CONNECTABLE = ("pending", "needs_reauth", "disconnected")
# What the header says beside the rolled-up health, when it needs words (health.py's states).
HEALTH_WORDS = {
    "declined": "The merchant declined the connection request. Talk to them, then send a new "
    "connect link.",
    "failing": "Every stream that ran failed its last run: see the Streams tab for why.",
    "degraded": "Some streams failed or skipped records: see the Streams tab for why.",
    "stalled": "A sync is making no progress: see the Streams tab.",
    "uninstalled": "The merchant removed the app: the hub's access is gone. Send a reconnect "
    "link if this was a mistake.",
}
TABS = ("status", "streams", "runs", "logs", "webhooks", "links", "settings")
LOG_LEVELS = (
    ("all", "All levels"),
    ("info", "Info and above"),
    ("warning", "Warnings and errors"),
    ("error", "Errors only"),
)


def _marketplace_names(ids: str) -> str:
    names = []
    for marketplace_id in filter(None, (part.strip() for part in ids.split(","))):
        marketplace = amazon_regions.MARKETPLACES.get(marketplace_id)
        label = f"{marketplace.name} ({marketplace.country})" if marketplace else marketplace_id
        names.append(label)
    return ", ".join(names)


def _stream_rows(
    session: Session, integration_id: uuid.UUID, role: str = ""
) -> list[dict[str, Any]]:
    """Each stream: schedule and records, its health with the cause in words, its
    completeness (the platform's count of the last full pass, the drift) and the actions it
    offers this role."""
    status = integration_service.get_integration(
        session=session, integration_id=integration_id
    ).status
    health_of = {
        row["stream"]: row
        for row in health.stream_health(session=session, integration_id=integration_id)
    }
    counts = completeness.stream_completeness(
        session=session,
        integration_id=integration_id,
        threshold_percent=get_settings().completeness_drift_percent,
    )
    rows: list[dict[str, Any]] = []
    for row in integration_view.stream_rows(session=session, integration_id=integration_id):
        name = str(row["stream"])
        counted = counts.get(name)
        rows.append(
            {
                **row,
                **health_of.get(name, {}),
                "countable": counted is not None,  # the platform gives a count of it
                "counted": counted is not None and counted["platform_count"] is not None,
                "platform_count": counted["platform_count"] if counted else None,
                "counted_at": counted["counted_at"] if counted else "",
                "drift_words": counted["drift_words"] if counted else "",
                "drifting": bool(counted and counted["drifting"]),
                "actions": sorted(
                    rules.stream_actions(
                        status=status,
                        role=role,
                        enabled=bool(row["enabled"]),
                        paused=bool(row["paused"]),
                    )
                ),
            }
        )
    return rows


class DetailState(LiveState, AuthState):
    tab: str = "streams"
    info: dict[str, str] = {}
    streams: list[dict] = []
    history: list[dict] = []
    incidents: list[dict] = []
    runs: list[dict] = []
    links: list[dict[str, str]] = []
    logs: list[dict[str, str]] = []
    log_search: str = ""
    log_level: str = "all"
    _page_of: str = ""  # the integration the log filters and the new link belong to
    subscriptions: list[dict[str, str]] = []
    deliveries: list[dict[str, str]] = []
    new_link_url: str = ""
    missing: bool = False

    @rx.var
    def integration_id(self) -> str:
        return routes.route_arg(str(self.router.url), routes.INTEGRATIONS)

    @rx.var
    def can_connect(self) -> bool:
        """Pending, revoked or disconnected: the one thing to do is (re)connect."""
        return self.info.get("status", "") in CONNECTABLE

    @rx.var
    def connect_label(self) -> str:
        return "Connect now" if self.info.get("status") == "pending" else "Reconnect now"

    @rx.var
    def actions(self) -> list[str]:
        """What this integration offers the signed-in person now (``services.actions``)."""
        status = self.info.get("status", "")
        return (
            sorted(rules.integration_actions(status=status, role=self.user_role)) if status else []
        )

    async def _refused(self, action: rules.Action, stream: str = "") -> Any:
        """The rule again, on the rows as stored now: a toast saying why when it refuses."""
        integration_id, role = uuid.UUID(self.integration_id), acting_user().role

        def check(session: Session) -> None:
            if stream:
                rules.check_stream_action(
                    session=session, integration_id=integration_id, stream=stream,
                    action=action, role=role,
                )  # fmt: skip
            else:
                rules.check_integration_action(
                    session=session, integration_id=integration_id, action=action, role=role
                )

        try:
            await in_session(check)
        except rules.ActionRefused as refused:
            return rx.toast.error(str(refused))
        return None

    @not_an_event
    async def fetch(self) -> object:
        """The integration and what its open tab shows; None when it does not exist."""
        raw_id, tab, role = self.integration_id, self.tab, self.user_role
        search, level = self.log_search, "" if self.log_level == "all" else self.log_level

        def load(session) -> dict[str, object] | None:
            try:
                integration_id = uuid.UUID(raw_id)
                info = integration_view.integration_detail(
                    session=session, integration_id=integration_id
                )
            except (ValueError, NotFound):
                return None
            info["marketplaces"] = _marketplace_names(str(info.get("marketplaces", "")))
            rolled_up = health.integration_health(session=session, ids=[integration_id])
            info["health"] = str(rolled_up.get(str(integration_id), {}).get("health", ""))
            info["health_words"] = HEALTH_WORDS.get(str(info["health"]), "")
            data: dict[str, object] = {
                "info": info,
                "streams": _stream_rows(session, integration_id, role),
                "history": runs_service.runs_per_day(
                    session=session, integration_id=integration_id
                ),
                "incidents": incidents.list_incidents(
                    session=session, integration_id=integration_id
                ),
                "runs": runs_service.list_runs(
                    session=session, integration_id=integration_id, limit=20
                ),
                "links": [
                    {
                        "id": str(link.id),
                        "purpose": link.purpose,
                        "expires": link.expires_at.isoformat(),
                    }
                    for link in integration_service.active_connect_links(
                        session=session, integration_id=integration_id
                    )
                ],
            }
            # Logs and deliveries are read only while their tab is open.
            if tab == "logs":
                data["logs"] = runs_service.integration_events(
                    session=session, integration_id=integration_id, search=search, level=level
                )
            if tab == "webhooks":
                data["subscriptions"] = webhooks_view.subscriptions(
                    session=session, integration_id=integration_id
                )
                data["deliveries"] = webhooks_view.recent_deliveries(
                    session=session, integration_id=integration_id
                )
            return data

        return await in_session(load)

    @not_an_event
    def apply(self, data: object) -> None:
        if data is None:
            assign_changed(self, {"missing": True})
            return
        assign_changed(self, {**data, "missing": False})  # type: ignore[dict-item]

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_detail(self):
        # The role decides which actions the page offers: known before the first read.
        self.user_role = acting_user().role
        # A websocket reconnect runs on_load again on the same page, whose search box keeps
        # its text: the filters stay with it (reset, the list and the download were the
        # unfiltered logs under a box still saying "SUCCEEDED"), and so does a connect link
        # just created (shown once: its token is kept hashed). Another integration starts
        # without them.
        shown = routes.route_arg(str(self.router.url), routes.INTEGRATIONS)
        if self._page_of != shown:
            self.new_link_url, self.log_search, self.log_level = "", "", "all"
            self._page_of = shown
        requested = dict(parse_qsl(urlsplit(str(self.router.url)).query)).get("tab", "")
        self.tab = requested if requested in TABS else "streams"
        self.apply(await self.fetch())

    async def _refresh(self) -> None:
        self.apply(await self.fetch())

    @rx.event
    @requires(Role.VIEWER)
    async def set_tab(self, value: str):
        self.tab = value if value in TABS else "streams"
        await self._refresh()

    @rx.event
    @requires(Role.VIEWER)
    async def set_log_search(self, value: str):
        self.log_search = value[:200]
        await self._refresh()

    @rx.event
    @requires(Role.VIEWER)
    async def set_log_level(self, value: str):
        self.log_level = value
        await self._refresh()

    @rx.event
    @requires(Role.VIEWER)
    async def download_logs(self, fmt: str):
        integration_id = uuid.UUID(self.integration_id)
        search, level = self.log_search, "" if self.log_level == "all" else self.log_level
        text = await in_session(
            lambda s: runs_service.export_events(
                session=s, integration_id=integration_id, search=search, level=level, fmt=fmt
            )
        )
        json_file = fmt == "json"
        return rx.download(
            data=text,
            filename=f"integration-{self.integration_id[:8]}-logs.{'json' if json_file else 'txt'}",
            mime_type="application/json" if json_file else "text/plain",
        )

    @rx.event
    @requires(Role.MANAGER)
    async def reconnect_now(self):
        """Re-authorize in place: this browser goes through the platform's consent page, the
        new tokens replace the old ones and the page comes back here."""
        action = (
            rules.Action.CONNECT if self.info.get("status") == "pending" else rules.Action.RECONNECT
        )
        if refused := await self._refused(action):
            return refused
        platform = self.info.get("platform", "")
        return leave_app(f"/api/oauth/{platform}/start?integration={self.integration_id}")

    @rx.event
    @requires(Role.MANAGER)
    async def sync_now(self, stream: str = ""):
        if refused := await self._refused(rules.Action.SYNC, stream):
            return refused
        try:
            await sync.request_sync(integration_id=self.integration_id, stream=stream or None)
        except sync.SyncRefused as refused:
            return rx.toast.error(str(refused))
        await self._refresh()
        return rx.toast.success("Sync started.")

    @rx.event
    @requires(Role.MANAGER)
    async def full_resync(self, stream: str):
        if refused := await self._refused(rules.Action.FULL_RESYNC, stream):
            return refused
        try:
            await sync.request_sync(
                integration_id=self.integration_id, stream=stream, full_refresh=True
            )
        except sync.SyncRefused as refused:
            return rx.toast.error(str(refused))
        await self._refresh()
        return rx.toast.success(f"Full resync of {stream} started; history is kept.")

    @rx.event
    @requires(Role.MANAGER)
    async def set_stream_paused(self, stream: str, paused: bool):
        action = rules.Action.PAUSE if paused else rules.Action.RESUME
        if refused := await self._refused(action, stream):
            return refused
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        try:
            await in_session(
                lambda s: sync.set_paused(
                    session=s,
                    integration_id=integration_id,
                    stream=stream,
                    paused=paused,
                    actor=actor,
                )
            )
        except sync.SyncRefused as refused:
            return rx.toast.error(str(refused))
        scheduler.poke()
        await self._refresh()
        return rx.toast.success(f"{stream} {'paused' if paused else 'resumed'}.")

    @rx.event
    @requires(Role.MANAGER)
    async def set_paused(self, paused: bool):
        action = rules.Action.PAUSE if paused else rules.Action.RESUME
        if refused := await self._refused(action):
            return refused
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        try:
            await in_session(
                lambda s: sync.set_paused(
                    session=s, integration_id=integration_id, paused=paused, actor=actor
                )
            )
        except sync.SyncRefused as refused:
            return rx.toast.error(str(refused))
        scheduler.poke()
        await self._refresh()
        return rx.toast.success("Integration paused." if paused else "Integration resumed.")

    @rx.event
    @requires(Role.MANAGER)
    async def create_link(self, purpose: str):
        action = (
            rules.Action.CONNECT_LINK
            if purpose == ConnectPurpose.CONNECT.value
            else rules.Action.RECONNECT_LINK
        )
        if refused := await self._refused(action):
            return refused
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        _, token = await in_session(
            lambda s: integration_service.create_connect_link(
                session=s,
                integration_id=integration_id,
                purpose=ConnectPurpose(purpose),
                actor=actor,
            )
        )
        self.tab = "links"  # where the new link is shown
        await self._refresh()
        # The raw link is shown to this manager once; only its hash is stored.
        self.new_link_url = integration_service.connect_link_url(token)
        return rx.toast.success("Link created. Copy it now: it is shown once.")

    @rx.event
    @requires(Role.MANAGER)
    async def revoke_link(self, link_id: str):
        actor = acting_user()
        try:
            await in_session(
                lambda s: integration_service.revoke_connect_link(
                    session=s, link_id=uuid.UUID(link_id), actor=actor
                )
            )
        except NotFound as missing:
            return rx.toast.error(str(missing))
        await self._refresh()
        return rx.toast.success("Link revoked.")

    @rx.event
    @requires(Role.MANAGER)
    async def disconnect(self):
        if refused := await self._refused(rules.Action.DISCONNECT):
            return refused
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        await in_session(
            lambda s: integration_settings.disconnect_integration(
                session=s, integration_id=integration_id, actor=actor
            )
        )
        scheduler.poke()
        await self._refresh()
        return rx.toast.success("Disconnected. Tokens were destroyed; data is kept.")

    @rx.event
    @requires(Role.ADMIN)
    async def delete(self):
        if refused := await self._refused(rules.Action.DELETE):
            return refused
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        await in_session(
            lambda s: integration_settings.delete_integration(
                session=s, integration_id=integration_id, actor=actor
            )
        )
        scheduler.poke()
        return [rx.redirect(routes.INTEGRATIONS), rx.toast.success("Integration deleted.")]
