"""One integration: status, streams (sync now, pause, resync), runs, connect links, settings."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl, urlsplit

import reflex as rx

from connectors.amazon import regions as amazon_regions
from connectors.errors import InvalidInput
from dashboard import routes
from dashboard.components.common import empty_state, status_badge
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import ConnectPurpose, Role
from dashboard.services import integrations as integration_service
from dashboard.services import runs as runs_service
from dashboard.services import scheduler, sync, webhooks_view
from dashboard.services.auth import PermissionDenied
from dashboard.services.integrations import NotFound
from dashboard.state.auth import AuthState, leave_app
from dashboard.state.live import LiveState, assign_changed, live_region

CONNECTABLE = ("pending", "needs_reauth", "disconnected")
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


class DetailState(LiveState, AuthState):
    tab: str = "streams"
    info: dict[str, str] = {}
    streams: list[dict] = []
    runs: list[dict] = []
    links: list[dict[str, str]] = []
    logs: list[dict[str, str]] = []
    log_search: str = ""
    log_level: str = "all"
    subscriptions: list[dict[str, str]] = []
    deliveries: list[dict[str, str]] = []
    new_link_url: str = ""
    missing: bool = False
    rename_to: str = ""

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

    async def fetch(self) -> object:
        """The integration and what its open tab shows; None when it does not exist."""
        raw_id, tab = self.integration_id, self.tab
        search, level = self.log_search, "" if self.log_level == "all" else self.log_level

        def load(session) -> dict[str, object] | None:
            try:
                integration_id = uuid.UUID(raw_id)
                info = integration_service.integration_detail(
                    session=session, integration_id=integration_id
                )
            except (ValueError, NotFound):
                return None
            info["marketplaces"] = _marketplace_names(str(info.get("marketplaces", "")))
            data: dict[str, object] = {
                "info": info,
                "streams": integration_service.stream_rows(
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

    def apply(self, data: object) -> None:
        if data is None:
            assign_changed(self, {"missing": True})
            return
        assign_changed(self, {**data, "missing": False})  # type: ignore[dict-item]

    @rx.event
    async def load_detail(self):
        if not await self.signed_in():
            return
        self.new_link_url, self.log_search, self.log_level = "", "", "all"
        requested = dict(parse_qsl(urlsplit(str(self.router.url)).query)).get("tab", "")
        self.tab = requested if requested in TABS else "streams"
        self.apply(await self.fetch())
        self.rename_to = self.info.get("name", "")

    async def _refresh(self) -> None:
        self.apply(await self.fetch())

    @rx.event
    async def set_tab(self, value: str):
        self.tab = value if value in TABS else "streams"
        await self._refresh()

    @rx.event
    async def set_log_search(self, value: str):
        self.log_search = value[:200]
        await self._refresh()

    @rx.event
    async def set_log_level(self, value: str):
        self.log_level = value
        await self._refresh()

    @rx.event
    async def download_logs(self, fmt: str):
        if not await self.signed_in():
            return None
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

    async def _manager(self):
        return await self.require(Role.MANAGER)

    @rx.event
    async def reconnect_now(self):
        """Re-authorize in place: this browser goes through the platform's consent page, the
        new tokens replace the old ones and the page comes back here."""
        try:
            await self._manager()
        except PermissionDenied as denied:
            return rx.toast.error(str(denied))
        platform = self.info.get("platform", "")
        return leave_app(f"/api/oauth/{platform}/start?integration={self.integration_id}")

    @rx.event
    async def sync_now(self, stream: str = ""):
        try:
            await self._manager()
            await sync.request_sync(integration_id=self.integration_id, stream=stream or None)
        except (PermissionDenied, sync.SyncRefused) as error:
            return rx.toast.error(str(error))
        await self._refresh()
        return rx.toast.success("Sync started.")

    @rx.event
    async def full_resync(self, stream: str):
        try:
            await self._manager()
            await sync.request_sync(
                integration_id=self.integration_id, stream=stream, full_refresh=True
            )
        except (PermissionDenied, sync.SyncRefused) as error:
            return rx.toast.error(str(error))
        await self._refresh()
        return rx.toast.success(f"Full resync of {stream} started; history is kept.")

    @rx.event
    async def set_stream_paused(self, stream: str, paused: bool):
        integration_id = uuid.UUID(self.integration_id)
        try:
            await self._manager()
            await in_session(
                lambda s: sync.set_paused(
                    session=s, integration_id=integration_id, stream=stream, paused=paused
                )
            )
        except (PermissionDenied, sync.SyncRefused) as error:
            return rx.toast.error(str(error))
        scheduler.poke()
        await self._refresh()
        return rx.toast.success(f"{stream} {'paused' if paused else 'resumed'}.")

    @rx.event
    async def set_paused(self, paused: bool):
        integration_id = uuid.UUID(self.integration_id)
        try:
            await self._manager()
            await in_session(
                lambda s: sync.set_paused(session=s, integration_id=integration_id, paused=paused)
            )
        except (PermissionDenied, sync.SyncRefused) as error:
            return rx.toast.error(str(error))
        scheduler.poke()
        await self._refresh()
        return rx.toast.success("Integration paused." if paused else "Integration resumed.")

    @rx.event
    async def create_link(self, purpose: str):
        integration_id = uuid.UUID(self.integration_id)
        try:
            actor = await self._manager()
        except PermissionDenied as denied:
            return rx.toast.error(str(denied))
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
    async def revoke_link(self, link_id: str):
        try:
            actor = await self._manager()
            await in_session(
                lambda s: integration_service.revoke_connect_link(
                    session=s, link_id=uuid.UUID(link_id), actor=actor
                )
            )
        except (PermissionDenied, NotFound) as error:
            return rx.toast.error(str(error))
        await self._refresh()
        return rx.toast.success("Link revoked.")

    @rx.event
    def set_rename_to(self, value: str):
        self.rename_to = value

    @rx.event
    async def rename(self):
        integration_id, name = uuid.UUID(self.integration_id), self.rename_to
        try:
            actor = await self._manager()
            await in_session(
                lambda s: integration_service.rename_integration(
                    session=s, integration_id=integration_id, name=name, actor=actor
                )
            )
        except (PermissionDenied, InvalidInput) as error:
            return rx.toast.error(str(error))
        await self._refresh()
        return rx.toast.success("Renamed.")

    @rx.event
    async def disconnect(self):
        integration_id = uuid.UUID(self.integration_id)
        try:
            actor = await self._manager()
            await in_session(
                lambda s: integration_service.disconnect_integration(
                    session=s, integration_id=integration_id, actor=actor
                )
            )
        except PermissionDenied as denied:
            return rx.toast.error(str(denied))
        scheduler.poke()
        await self._refresh()
        return rx.toast.success("Disconnected. Tokens were destroyed; data is kept.")

    @rx.event
    async def delete(self):
        integration_id = uuid.UUID(self.integration_id)
        try:
            actor = await self.require(Role.ADMIN)
            await in_session(
                lambda s: integration_service.delete_integration(
                    session=s, integration_id=integration_id, actor=actor
                )
            )
        except PermissionDenied as denied:
            return rx.toast.error(str(denied))
        scheduler.poke()
        return [rx.redirect(routes.INTEGRATIONS), rx.toast.success("Integration deleted.")]


def fact(label: str, value: rx.Var | rx.Component) -> rx.Component:
    """One labelled line; a value not known (yet) shows as a dash, not as nothing."""
    shown = rx.cond(value != "", value, "—") if isinstance(value, rx.Var) else value
    return rx.hstack(
        rx.text(label, color_scheme="gray", size="2", min_width="9rem"),
        rx.text(shown, size="2"),
        align="center",
    )


def connect_actions() -> rx.Component:
    """Reconnect in place (this browser) or hand the merchant a reconnect link."""
    return rx.cond(
        DetailState.can_manage,
        rx.hstack(
            rx.button(
                rx.icon("plug-zap"), DetailState.connect_label, on_click=DetailState.reconnect_now
            ),
            rx.button(
                rx.icon("link"),
                rx.cond(
                    DetailState.info["status"] == "pending",
                    "New connect link",
                    "New reconnect link",
                ),
                variant="soft",
                on_click=DetailState.create_link(
                    rx.cond(DetailState.info["status"] == "pending", "connect", "reconnect")
                ),
            ),
            wrap="wrap",
        ),
    )


def status_tab() -> rx.Component:
    info = DetailState.info
    return rx.vstack(
        rx.cond(
            (info["status_detail"] != "") | DetailState.can_connect,
            rx.callout.root(
                rx.callout.icon(rx.icon("info")),
                rx.vstack(
                    rx.callout.text(
                        rx.cond(
                            info["status_detail"] != "",
                            info["status_detail"],
                            rx.cond(
                                info["status"] == "pending",
                                "Not connected yet. Connect it yourself, or send the merchant "
                                "a connect link.",
                                "Not connected. Reconnect it to resume syncing.",
                            ),
                        )
                    ),
                    rx.cond(DetailState.can_connect, connect_actions()),
                    spacing="3",
                ),
                color_scheme="orange",
                width="100%",
            ),
        ),
        fact("Platform", info["platform"]),
        fact("Shop / seller", info["account"]),
        rx.cond(
            info["platform"] == "amazon",
            rx.fragment(
                fact("Region", info["region"]),
                fact("Marketplaces", info["marketplaces"]),
            ),
        ),
        fact("Shop name", info["shop_name"]),
        rx.cond(  # an Amazon seller has no plan, and no currency of its own (per marketplace)
            info["platform"] == "shopify",
            rx.fragment(fact("Plan", info["shop_plan"]), fact("Currency", info["currency"])),
        ),
        fact(
            "Connected",
            rx.cond(
                info["connected_at"] != "",
                rx.moment(info["connected_at"], from_now=True),
                "not yet",
            ),
        ),
        fact(
            "Last sync",
            rx.cond(info["last_sync"] != "", rx.moment(info["last_sync"], from_now=True), "never"),
        ),
        fact(
            "Token refreshed",
            rx.cond(
                info["token_refreshed"] != "",
                rx.moment(info["token_refreshed"], from_now=True),
                "—",
            ),
        ),
        fact(
            "Token expires",
            rx.cond(
                info["token_expires"] != "",
                rx.moment(info["token_expires"], from_now=True),
                "does not expire",
            ),
        ),
        rx.cond(  # SP-API grants the roles set on the app, not scopes per authorization
            info["platform"] == "shopify", fact("Scopes", info["scopes"])
        ),
        fact("Encrypted with key", info["key_id"]),
        spacing="2",
    )


def streams_tab() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[
                    rx.table.column_header_cell(h)
                    for h in ("Stream", "Every", "Records", "Last run", "Next run", "")
                ]
            )
        ),
        rx.table.body(
            rx.foreach(
                DetailState.streams,
                lambda s: rx.table.row(
                    rx.table.row_header_cell(s["stream"]),
                    rx.table.cell(s["interval"], " min"),
                    rx.table.cell(s["records"]),
                    rx.table.cell(
                        rx.cond(
                            s["last_run"] != "", rx.moment(s["last_run"], from_now=True), "never"
                        )
                    ),
                    rx.table.cell(
                        rx.cond(
                            s["paused"],
                            rx.badge("paused", color_scheme="amber"),
                            rx.cond(
                                s["next_run"] != "", rx.moment(s["next_run"], from_now=True), "—"
                            ),
                        )
                    ),
                    rx.table.cell(
                        rx.cond(
                            DetailState.can_manage,
                            rx.hstack(
                                rx.button(
                                    "Sync now", size="1", on_click=DetailState.sync_now(s["stream"])
                                ),
                                rx.cond(
                                    s["paused"],
                                    rx.button(
                                        "Resume",
                                        size="1",
                                        variant="soft",
                                        on_click=DetailState.set_stream_paused(s["stream"], False),
                                    ),
                                    rx.button(
                                        "Pause",
                                        size="1",
                                        variant="soft",
                                        on_click=DetailState.set_stream_paused(s["stream"], True),
                                    ),
                                ),
                                rx.button(
                                    "Full resync",
                                    size="1",
                                    variant="ghost",
                                    on_click=DetailState.full_resync(s["stream"]),
                                ),
                            ),
                        )
                    ),
                ),
            )
        ),
        variant="surface",
        width="100%",
    )


def runs_tab() -> rx.Component:
    return rx.cond(
        DetailState.runs.length() > 0,
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("Queued", "Stream", "Status", "Progress", "Records", "Error")
                    ]
                )
            ),
            rx.table.body(
                rx.foreach(
                    DetailState.runs,
                    lambda r: rx.table.row(
                        rx.table.cell(rx.moment(r["created_at"], from_now=True)),
                        rx.table.cell(r["stream"]),
                        rx.table.cell(status_badge(r["status"])),
                        rx.table.cell(
                            rx.cond(
                                r["has_progress"],
                                rx.progress(value=r["progress"], width="8rem"),
                                rx.text(r["rate"], "/s", size="1"),
                            )
                        ),
                        rx.table.cell(r["records_read"]),
                        rx.table.cell(rx.text(r["error"], size="1", color_scheme="red")),
                    ),
                )
            ),
            variant="surface",
            width="100%",
        ),
        empty_state("activity", "No runs yet", "Runs appear once the integration is connected."),
    )


LEVEL_COLORS = (("error", "red"), ("warning", "amber"), ("debug", "gray"))


def log_line(event: rx.Var[dict]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.moment(event["at"], format="YYYY-MM-DD HH:mm:ss"), white_space="nowrap"),
        rx.table.cell(event["stream"]),
        rx.table.cell(
            rx.badge(event["level"], color_scheme=rx.match(event["level"], *LEVEL_COLORS, "blue"))
        ),
        rx.table.cell(rx.text(event["message"], size="2", word_break="break-word")),
    )


def logs_tab() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.input(
                rx.input.slot(rx.icon("search", size=16)),
                placeholder="Search the logs",
                default_value=DetailState.log_search,
                on_change=DetailState.set_log_search.debounce(300),
                aria_label="Search the logs",
                width="18rem",
            ),
            rx.select.root(
                rx.select.trigger(aria_label="Level"),
                rx.select.content(
                    *[rx.select.item(label, value=value) for value, label in LOG_LEVELS]
                ),
                value=DetailState.log_level,
                on_change=DetailState.set_log_level,
            ),
            rx.spacer(),
            rx.button(
                rx.icon("download", size=16),
                "Download JSON",
                variant="soft",
                on_click=DetailState.download_logs("json"),
            ),
            rx.button(
                rx.icon("file-text", size=16),
                "Download text",
                variant="soft",
                on_click=DetailState.download_logs("text"),
            ),
            wrap="wrap",
            width="100%",
            spacing="3",
        ),
        rx.cond(
            DetailState.logs.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(header, width=width)
                            for header, width in (
                                ("Time", "11rem"),
                                ("Stream", "8rem"),
                                ("Level", "6rem"),
                                ("Message", "auto"),
                            )
                        ]
                    )
                ),
                rx.table.body(rx.foreach(DetailState.logs, log_line)),
                variant="surface",
                size="1",
                width="100%",
                layout="fixed",
            ),
            rx.cond(
                (DetailState.log_search != "") | (DetailState.log_level != "all"),
                empty_state(
                    "search-x", "No log lines match", "Change the search or the level filter."
                ),
                empty_state("scroll-text", "No logs yet", "Each sync run writes its log here."),
            ),
        ),
        rx.text(
            "Shows the newest 200 matching lines of the 200 latest runs, live. Downloads cover "
            "the whole history with the same search and level.",
            size="1",
            color_scheme="gray",
        ),
        spacing="3",
        width="100%",
    )


def webhooks_tab() -> rx.Component:
    return rx.vstack(
        rx.heading("Subscriptions", size="3"),
        rx.cond(
            DetailState.subscriptions.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[rx.table.column_header_cell(h) for h in ("Topic", "Sent to", "Since")]
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        DetailState.subscriptions,
                        lambda sub: rx.table.row(
                            rx.table.row_header_cell(rx.code(sub["topic"])),
                            rx.table.cell(rx.text(sub["callback_url"], size="1")),
                            rx.table.cell(rx.moment(sub["created_at"], from_now=True)),
                        ),
                    )
                ),
                variant="surface",
                size="1",
                width="100%",
            ),
            rx.text(
                rx.cond(
                    DetailState.info["platform"] == "amazon",
                    "Amazon does not send webhooks to the hub: the scheduled syncs pick up "
                    "every change.",
                    "No subscriptions yet. The hub subscribes to the store's webhooks when it "
                    "connects; until then the scheduled syncs pick up every change.",
                ),
                size="2",
                color_scheme="gray",
            ),
        ),
        rx.heading("Recent deliveries", size="3", padding_top="0.5rem"),
        rx.cond(
            DetailState.deliveries.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("Received", "Topic", "Status", "Processed", "Error")
                        ]
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        DetailState.deliveries,
                        lambda d: rx.table.row(
                            rx.table.cell(rx.moment(d["received_at"], from_now=True)),
                            rx.table.cell(rx.code(d["topic"])),
                            rx.table.cell(status_badge(d["status"])),
                            rx.table.cell(
                                rx.cond(
                                    d["processed_at"] != "",
                                    rx.moment(d["processed_at"], from_now=True),
                                    "—",
                                )
                            ),
                            rx.table.cell(rx.text(d["error"], size="1", color_scheme="red")),
                        ),
                    )
                ),
                variant="surface",
                size="1",
                width="100%",
            ),
            rx.text(
                "No webhook deliveries received yet. The 50 newest show here as they arrive.",
                size="2",
                color_scheme="gray",
            ),
        ),
        spacing="3",
        width="100%",
    )


def links_tab() -> rx.Component:
    return rx.vstack(
        rx.cond(
            DetailState.can_manage,
            rx.hstack(
                rx.button(
                    rx.icon("link"), "New connect link", on_click=DetailState.create_link("connect")
                ),
                rx.button(
                    rx.icon("refresh-ccw"),
                    "New reconnect link",
                    variant="soft",
                    on_click=DetailState.create_link("reconnect"),
                ),
                rx.cond(
                    DetailState.info["status"] == "paused",
                    rx.button(
                        "Resume integration", variant="soft", on_click=DetailState.set_paused(False)
                    ),
                    rx.button(
                        "Pause integration", variant="soft", on_click=DetailState.set_paused(True)
                    ),
                ),
            ),
        ),
        rx.cond(
            DetailState.new_link_url != "",
            rx.hstack(
                rx.code(DetailState.new_link_url, id="connect-link"),
                rx.button(
                    rx.icon("copy"),
                    "Copy",
                    size="1",
                    variant="soft",
                    on_click=[
                        rx.set_clipboard(DetailState.new_link_url),
                        rx.toast.success("Copied"),
                    ],
                ),
                align="center",
            ),
        ),
        rx.foreach(
            DetailState.links,
            lambda link: rx.hstack(
                rx.badge(link["purpose"]),
                rx.text("expires ", rx.moment(link["expires"], from_now=True), size="2"),
                rx.cond(
                    DetailState.can_manage,
                    rx.button(
                        "Revoke",
                        size="1",
                        color_scheme="red",
                        variant="soft",
                        on_click=DetailState.revoke_link(link["id"]),
                    ),
                ),
                align="center",
            ),
        ),
        spacing="3",
    )


def settings_tab() -> rx.Component:
    return rx.cond(
        DetailState.can_manage,
        rx.vstack(
            rx.heading("Name", size="3"),
            rx.hstack(
                rx.input(
                    value=DetailState.rename_to,
                    on_change=DetailState.set_rename_to,
                    aria_label="Integration name",
                    width="20rem",
                ),
                rx.button("Rename", variant="soft", on_click=DetailState.rename),
            ),
            rx.heading("Authorization", size="3", padding_top="0.5rem"),
            rx.text(
                "Reconnecting asks the platform for new access for the same store or seller; "
                "the new tokens replace the old ones and the data and history stay.",
                size="2",
                color_scheme="gray",
                max_width="40rem",
            ),
            connect_actions(),
            rx.heading("Danger zone", size="3", padding_top="0.5rem"),
            rx.hstack(disconnect_dialog(), rx.cond(DetailState.is_admin, delete_dialog())),
            spacing="3",
            align="start",
        ),
        rx.vstack(
            fact("Name", DetailState.info["name"]),
            rx.text(
                "Managers and admins can rename, reconnect and disconnect integrations.",
                size="2",
                color_scheme="gray",
            ),
            spacing="3",
        ),
    )


def disconnect_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button("Disconnect", color_scheme="orange", variant="soft")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Disconnect this integration?"),
            rx.alert_dialog.description(
                "Syncing stops and the stored tokens are destroyed. Synced data and history "
                "are kept."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button("Disconnect", color_scheme="orange", on_click=DetailState.disconnect)
                ),
            ),
        ),
    )


def delete_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button("Delete", color_scheme="red", variant="soft")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete this integration and all its data?"),
            rx.alert_dialog.description(
                "Its synced records, runs and logs are removed. This cannot be undone."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button("Delete", color_scheme="red", on_click=DetailState.delete)
                ),
            ),
        ),
    )


@template(route=routes.INTEGRATION_DETAIL, title="Integration", on_load=DetailState.load_detail)
def integration_detail() -> rx.Component:
    return rx.cond(
        DetailState.missing,
        empty_state(
            "search-x",
            "Integration not found",
            "It may have been deleted.",
            rx.link("Back to integrations", href=routes.INTEGRATIONS),
        ),
        live_region(
            rx.vstack(
                rx.hstack(
                    rx.heading(DetailState.info["name"], size="5"),
                    status_badge(DetailState.info["status"]),
                    rx.spacer(),
                    rx.cond(
                        DetailState.can_manage,
                        rx.cond(
                            DetailState.can_connect,
                            rx.button(
                                rx.icon("plug-zap"),
                                DetailState.connect_label,
                                on_click=DetailState.reconnect_now,
                            ),
                            rx.button(
                                rx.icon("refresh-cw"),
                                "Sync all now",
                                on_click=DetailState.sync_now(""),
                            ),
                        ),
                    ),
                    align="center",
                    width="100%",
                ),
                rx.tabs.root(
                    rx.tabs.list(
                        rx.tabs.trigger("Status", value="status"),
                        rx.tabs.trigger("Streams", value="streams"),
                        rx.tabs.trigger("Runs", value="runs"),
                        rx.tabs.trigger("Logs", value="logs"),
                        rx.tabs.trigger("Webhooks", value="webhooks"),
                        rx.tabs.trigger("Connect links", value="links"),
                        rx.tabs.trigger("Settings", value="settings"),
                    ),
                    rx.tabs.content(status_tab(), value="status", padding_top="1rem"),
                    rx.tabs.content(streams_tab(), value="streams", padding_top="1rem"),
                    rx.tabs.content(runs_tab(), value="runs", padding_top="1rem"),
                    rx.tabs.content(logs_tab(), value="logs", padding_top="1rem"),
                    rx.tabs.content(webhooks_tab(), value="webhooks", padding_top="1rem"),
                    rx.tabs.content(links_tab(), value="links", padding_top="1rem"),
                    rx.tabs.content(settings_tab(), value="settings", padding_top="1rem"),
                    value=DetailState.tab,
                    on_change=DetailState.set_tab,
                    width="100%",
                ),
                width="100%",
                spacing="4",
            ),
            watch=DetailState.watch,
            stop=DetailState.stop_watching,
        ),
    )
