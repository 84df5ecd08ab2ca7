"""One integration: status, streams (sync now, pause, resync), runs, connect links, settings."""

from __future__ import annotations

import uuid

import reflex as rx

from connectors.errors import InvalidInput
from dashboard import routes
from dashboard.components.common import empty_state, status_badge
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import ConnectPurpose, Role
from dashboard.services import integrations as integration_service
from dashboard.services import runs as runs_service
from dashboard.services import scheduler, sync
from dashboard.services.auth import PermissionDenied
from dashboard.services.integrations import NotFound
from dashboard.state.auth import AuthState
from dashboard.state.live import live_loop, live_region


class DetailState(AuthState):
    watching: bool = False
    info: dict[str, str] = {}
    streams: list[dict] = []
    runs: list[dict] = []
    links: list[dict[str, str]] = []
    new_link_url: str = ""
    missing: bool = False
    rename_to: str = ""

    @rx.var
    def integration_id(self) -> str:
        return self.router.page.params.get("integration_id", "")

    @rx.event(background=True)
    async def watch(self):
        await live_loop(self)

    @rx.event
    def stop_watching(self):
        self.watching = False

    async def fetch(self) -> object:
        raw_id = self.integration_id

        def load(session):
            try:
                integration_id = uuid.UUID(raw_id)
                info = integration_service.integration_detail(
                    session=session, integration_id=integration_id
                )
            except (ValueError, NotFound):
                return None
            streams = integration_service.stream_rows(
                session=session, integration_id=integration_id
            )
            runs = runs_service.list_runs(session=session, integration_id=integration_id, limit=20)
            links = [
                {
                    "id": str(link.id),
                    "purpose": link.purpose,
                    "expires": link.expires_at.isoformat(),
                }
                for link in integration_service.active_connect_links(
                    session=session, integration_id=integration_id
                )
            ]
            return info, streams, runs, links

        return await in_session(load)

    def apply(self, data: object) -> None:
        if data is None:
            self.missing = True
            return
        self.missing = False
        self.info, self.streams, self.runs, self.links = data  # type: ignore[misc]

    @rx.event
    async def load_detail(self):
        self.new_link_url = ""
        self.apply(await self.fetch())
        self.rename_to = self.info.get("name", "")

    async def _manager(self):
        return await self.require(Role.MANAGER)

    @rx.event
    async def sync_now(self, stream: str = ""):
        try:
            await self._manager()
            await sync.request_sync(integration_id=self.integration_id, stream=stream or None)
        except (PermissionDenied, sync.SyncRefused) as error:
            return rx.toast.error(str(error))
        await self.load_detail()
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
        await self.load_detail()
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
        await self.load_detail()
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
        await self.load_detail()
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
        await self.load_detail()
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
        await self.load_detail()
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
        await self.load_detail()
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
        await self.load_detail()
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


def fact(label: str, value: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.text(label, color_scheme="gray", size="2", min_width="9rem"),
        rx.text(value, size="2"),
        align="center",
    )


def status_tab() -> rx.Component:
    info = DetailState.info
    return rx.vstack(
        rx.cond(
            info["status_detail"] != "",
            rx.callout(info["status_detail"], icon="info", color_scheme="orange"),
        ),
        fact("Platform", info["platform"]),
        fact("Shop / seller", info["account"]),
        fact("Shop name", info["shop_name"]),
        fact("Plan", info["shop_plan"]),
        fact("Currency", info["currency"]),
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
        fact("Scopes", info["scopes"]),
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
    return rx.vstack(
        rx.hstack(
            rx.input(
                value=DetailState.rename_to,
                on_change=DetailState.set_rename_to,
                aria_label="Integration name",
                width="20rem",
            ),
            rx.button("Rename", variant="soft", on_click=DetailState.rename),
        ),
        rx.alert_dialog.root(
            rx.alert_dialog.trigger(rx.button("Disconnect", color_scheme="orange", variant="soft")),
            rx.alert_dialog.content(
                rx.alert_dialog.title("Disconnect this integration?"),
                rx.alert_dialog.description(
                    "Syncing stops and the stored tokens are "
                    "destroyed. Synced data and history are kept."
                ),
                rx.hstack(
                    rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                    rx.alert_dialog.action(
                        rx.button(
                            "Disconnect", color_scheme="orange", on_click=DetailState.disconnect
                        )
                    ),
                ),
            ),
        ),
        rx.cond(
            DetailState.is_admin,
            rx.alert_dialog.root(
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
            ),
        ),
        spacing="4",
        align="start",
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
                        rx.button(
                            rx.icon("refresh-cw"), "Sync all now", on_click=DetailState.sync_now("")
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
                        rx.tabs.trigger("Connect links", value="links"),
                        rx.tabs.trigger("Settings", value="settings"),
                    ),
                    rx.tabs.content(status_tab(), value="status", padding_top="1rem"),
                    rx.tabs.content(streams_tab(), value="streams", padding_top="1rem"),
                    rx.tabs.content(runs_tab(), value="runs", padding_top="1rem"),
                    rx.tabs.content(links_tab(), value="links", padding_top="1rem"),
                    rx.tabs.content(settings_tab(), value="settings", padding_top="1rem"),
                    default_value="streams",
                    width="100%",
                ),
                width="100%",
                spacing="4",
            ),
            watch=DetailState.watch,
            stop=DetailState.stop_watching,
        ),
    )
