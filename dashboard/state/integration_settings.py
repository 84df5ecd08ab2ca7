"""The integration page's Settings tab, edited in place: the name, each stream on or off with
its interval or cron expression, an Amazon integration's marketplaces, and a Shopify
integration's own app. Each error is shown once, next to its field; each save is checked on
the server (``services.integration_settings``), audited, and handed to the scheduler at once.

A substate of ``DetailState``: it reads the page's integration, and the page's live refresh
never overwrites what is being typed here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import reflex as rx
from sqlmodel import Session

from connectors.amazon.regions import MARKETPLACES, REGION_MARKETPLACES
from connectors.errors import InvalidInput
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import actions as rules
from dashboard.services import integration_settings as settings_service
from dashboard.services import integrations as integration_service
from dashboard.services import scheduler, schedules
from dashboard.state.guard import acting_user, requires
from dashboard.state.integration_detail import DetailState


def _iso(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]


class SettingsEditState(DetailState):
    # The integration the form holds: until it is this page's, the form is not shown, so
    # nothing typed into it can be overwritten (or joined) by the load still on its way.
    loaded_for: str = ""
    edit_name: str = ""
    name_error: str = ""
    # One row per stream the platform offers: stream, label, enabled, mode, interval, cron.
    schedules: list[dict[str, Any]] = []
    schedule_errors: dict[str, str] = {}
    cron_next: dict[str, list[str]] = {}  # stream -> its cron's next three runs (ISO, UTC)
    edit_marketplaces: list[str] = []
    marketplaces_error: str = ""
    marketplace_choices: list[list[str]] = []  # (id, label) of the region's marketplaces
    app_client_id: str = ""  # public: it is in every consent URL
    app_error: str = ""
    # Typed into the form, never sent back to the browser.
    _new_client_id: str = ""
    _new_client_secret: str = ""

    @rx.event
    @requires(Role.MANAGER, quiet=True)
    async def load_settings(self):
        """Fill the form with the integration as stored (on opening the tab)."""
        raw_id = self.integration_id
        try:
            integration_id = uuid.UUID(raw_id)
        except ValueError:
            return
        self.loaded_for = ""  # hide the form (and what it held before) until it is reloaded
        yield

        def load(session: Session) -> tuple[Any, ...] | None:
            try:
                integration = integration_service.get_integration(
                    session=session, integration_id=integration_id
                )
            except integration_service.NotFound:
                return None
            return (
                integration.region or "",
                integration.display_name,
                settings_service.stream_schedules(session=session, integration_id=integration_id),
                list(integration.marketplaces or []),
                settings_service.own_app_client_id(session=session, integration_id=integration_id)
                if integration.platform == "shopify"
                else "",
            )

        loaded = await in_session(load)
        if loaded is None:
            return
        region, name, rows, marketplaces, client_id = loaded
        # Plain data, not a computed var of the page's ``info``: the page's live refresh
        # must not recompute this substate (and a computed var here would tie them).
        self.marketplace_choices = [
            [m, f"{MARKETPLACES[m].name} ({MARKETPLACES[m].country})"]
            for m in REGION_MARKETPLACES.get(region, ())
        ]
        self.edit_name, self.edit_marketplaces, self.app_client_id = name, marketplaces, client_id
        self.schedules = [
            {
                "stream": row["stream"],
                "label": integration_service.STREAM_LABELS.get(row["stream"], row["stream"]),
                "enabled": row["enabled"],
                "mode": "cron" if row["cron"] else "interval",
                "interval": str(row["interval"]),
                "cron": row["cron"],
            }
            for row in rows
        ]
        self.cron_next = {
            row["stream"]: _iso(schedules.next_cron_runs(row["cron"]))
            for row in rows
            if row["cron"]
        }
        self.name_error = self.marketplaces_error = self.app_error = ""
        self.schedule_errors = {}
        self.loaded_for = raw_id

    async def _allowed(self) -> str:
        """ "" when the integration may be edited by this person now, else why not."""
        integration_id, role = uuid.UUID(self.integration_id), acting_user().role
        try:
            await in_session(
                lambda s: rules.check_integration_action(
                    session=s, integration_id=integration_id, action=rules.Action.EDIT, role=role
                )
            )
        except rules.ActionRefused as refused:
            return str(refused)
        return ""

    # --- name ---------------------------------------------------------------------------------

    @rx.event
    @requires(Role.MANAGER)
    def set_edit_name(self, value: str):
        self.edit_name = value[:10_000]
        try:
            integration_service.checked_name(self.edit_name)
            self.name_error = ""
        except InvalidInput as invalid:
            self.name_error = str(invalid)

    @rx.event
    @requires(Role.MANAGER)
    async def save_name(self):
        if refused := await self._allowed():
            self.name_error = refused
            return
        integration_id, name, actor = uuid.UUID(self.integration_id), self.edit_name, acting_user()
        try:
            await in_session(
                lambda s: settings_service.rename_integration(
                    session=s, integration_id=integration_id, name=name, actor=actor
                )
            )
        except InvalidInput as invalid:
            self.name_error = str(invalid)
            return
        self.name_error = ""
        await self._refresh()
        self.edit_name = self.info.get("name", name)
        return rx.toast.success("Name saved.")

    # --- streams and schedules ------------------------------------------------------------------

    def _row(self, stream: str) -> dict[str, Any] | None:
        return next((row for row in self.schedules if row["stream"] == stream), None)

    def _set_row(self, stream: str, **changes: Any) -> None:
        self.schedules = [
            {**row, **changes} if row["stream"] == stream else row for row in self.schedules
        ]

    def _check_row(self, stream: str) -> None:
        """Check the row as typed; its error (or none) goes next to it, with the cron's next
        runs when it has one."""
        row = self._row(stream)
        if row is None:
            return
        errors, upcoming = dict(self.schedule_errors), dict(self.cron_next)
        errors.pop(stream, None)
        upcoming.pop(stream, None)
        try:
            if row["mode"] == "cron":
                upcoming[stream] = _iso(schedules.next_cron_runs(str(row["cron"])))
            else:
                schedules.parse_interval(str(row["interval"]))
        except InvalidInput as invalid:
            errors[stream] = str(invalid)
        self.schedule_errors, self.cron_next = errors, upcoming

    @rx.event
    @requires(Role.MANAGER)
    def set_stream_enabled(self, stream: str, enabled: bool):
        self._set_row(stream, enabled=bool(enabled))

    @rx.event
    @requires(Role.MANAGER)
    def set_schedule_mode(self, stream: str, mode: str):
        self._set_row(stream, mode="cron" if mode == "cron" else "interval")
        self._check_row(stream)

    @rx.event
    @requires(Role.MANAGER)
    def set_stream_interval(self, stream: str, value: str):
        self._set_row(stream, interval=value[:12])
        self._check_row(stream)

    @rx.event
    @requires(Role.MANAGER)
    def set_stream_cron(self, stream: str, value: str):
        self._set_row(stream, cron=value[: schedules.CRON_MAX_LENGTH + 1])
        self._check_row(stream)

    @rx.event
    @requires(Role.MANAGER)
    async def save_stream(self, stream: str):
        row = self._row(stream)
        if row is None:
            return rx.toast.error(f"This integration has no stream {stream!r}.")
        if refused := await self._allowed():
            self.schedule_errors = {**self.schedule_errors, stream: refused}
            return
        errors = {k: v for k, v in self.schedule_errors.items() if k != stream}
        cron_mode = row["mode"] == "cron"
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        try:
            stored = await in_session(lambda s: settings_service.stream_schedules(
                session=s, integration_id=integration_id
            ))  # fmt: skip
            kept = next((r["interval"] for r in stored if r["stream"] == stream), 15)
            # In cron mode the interval field is not shown: the stored one is kept for later.
            minutes = kept if cron_mode else schedules.parse_interval(str(row["interval"]))
            cron = str(row["cron"]) if cron_mode else None
            if cron is not None and not cron.strip():
                raise InvalidInput("Enter a cron expression, for example 0 */6 * * *.")
            changed = await in_session(
                lambda s: settings_service.update_stream_schedule(
                    session=s, integration_id=integration_id, stream=stream,
                    enabled=bool(row["enabled"]), interval_minutes=minutes, cron=cron, actor=actor,
                )
            )  # fmt: skip
        except InvalidInput as invalid:
            self.schedule_errors = {**errors, stream: str(invalid)}
            return
        self.schedule_errors = errors
        if not changed:
            return rx.toast.info(f"{row['label']}: nothing changed.")
        scheduler.poke()  # the lease holder reschedules the stream's job now
        await self._refresh()
        return rx.toast.success(f"{row['label']}: schedule saved.")

    # --- Amazon marketplaces --------------------------------------------------------------------

    @rx.event
    @requires(Role.MANAGER)
    def toggle_edit_marketplace(self, marketplace: str):
        if marketplace in self.edit_marketplaces:
            self.edit_marketplaces = [m for m in self.edit_marketplaces if m != marketplace]
        elif marketplace in MARKETPLACES:
            self.edit_marketplaces = [*self.edit_marketplaces, marketplace]
        self.marketplaces_error = (
            "" if self.edit_marketplaces else "Choose at least one marketplace."
        )

    @rx.event
    @requires(Role.MANAGER)
    async def save_marketplaces(self):
        if refused := await self._allowed():
            self.marketplaces_error = refused
            return
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        chosen = list(self.edit_marketplaces)
        try:
            changed = await in_session(
                lambda s: settings_service.set_marketplaces(
                    session=s, integration_id=integration_id, marketplaces=chosen, actor=actor
                )
            )
        except InvalidInput as invalid:
            self.marketplaces_error = str(invalid)
            return
        self.marketplaces_error = ""
        await self._refresh()
        return rx.toast.success("Marketplaces saved." if changed else "Nothing changed.")

    # --- a Shopify integration's own app --------------------------------------------------------

    @rx.event
    @requires(Role.MANAGER)
    def set_new_client_id(self, value: str):
        self._new_client_id = value

    @rx.event
    @requires(Role.MANAGER)
    def set_new_client_secret(self, value: str):
        self._new_client_secret = value

    @rx.event
    @requires(Role.MANAGER)
    async def save_app(self):
        if refused := await self._allowed():
            self.app_error = refused
            return
        integration_id, actor = uuid.UUID(self.integration_id), acting_user()
        client_id, secret = self._new_client_id, self._new_client_secret
        try:
            await in_session(
                lambda s: settings_service.replace_app_credentials(
                    session=s, integration_id=integration_id, client_id=client_id,
                    client_secret=secret, actor=actor,
                )
            )  # fmt: skip
        except InvalidInput as invalid:
            self.app_error = str(invalid)
            return
        self._new_client_id = self._new_client_secret = ""
        self.app_error = ""
        self.app_client_id = await in_session(
            lambda s: settings_service.own_app_client_id(session=s, integration_id=integration_id)
        )
        return rx.toast.success("App credentials saved and encrypted; the secret is not shown.")
