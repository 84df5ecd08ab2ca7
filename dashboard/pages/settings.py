"""Settings → General: app credentials, installs started from Shopify, encryption keys, the
audit log; and the Settings sub-page links (each sub-page has its own module:
settings_users, settings_account, golive)."""

from __future__ import annotations

from typing import ClassVar

import reflex as rx
from sqlmodel import Session

from connectors.errors import InvalidInput
from dashboard import routes
from dashboard.components.audit_log import AUDIT_HEADERS, audit_row
from dashboard.components.common import pager, submit_button
from dashboard.components.formats import counted
from dashboard.components.shell import sub_nav, template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import connect as connect_service
from dashboard.services.audit import audit_page
from dashboard.services.integrations import PLATFORM_STREAMS
from dashboard.services.vault import VaultError, get_vault
from dashboard.settings import get_settings
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, requires
from dashboard.state.paging import PagedState


def _credential_presence() -> list[dict[str, str]]:
    """Which platform settings are present; the secrets themselves never leave the server."""
    from connectors.sandbox.access import sandbox_apps

    settings = get_settings()
    apps = sandbox_apps(settings.sandbox_control_token or "")
    checks = [
        ("Shopify client id", settings.shopify_client_id, apps.shopify_client_id),
        ("Shopify client secret", settings.shopify_client_secret, apps.shopify_client_secret),
        ("Amazon app id", settings.amazon_app_id, apps.amazon_app_id),
        ("Amazon LWA client id", settings.amazon_client_id, apps.amazon_client_id),
        ("Amazon LWA client secret", settings.amazon_client_secret, apps.amazon_client_secret),
    ]
    # "sandbox app": the sandbox apps' credentials (secrets derived from the hub's token).
    return [
        {"name": name, "state": ("missing" if not value else
                                 "set (sandbox app)" if value == sandbox_value else "set")}
        for name, value, sandbox_value in checks
    ]  # fmt: skip


AUDIT_PAGE_SIZE = 25


def _install_stream_rows(session: Session) -> list[dict[str, str]]:
    chosen = connect_service.install_defaults(session=session)
    return [
        {"stream": name, "interval": str(chosen[name]) if name in chosen else ""}
        for name in PLATFORM_STREAMS["shopify"]
    ]


def install_defaults_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Installs started from Shopify", size="4", padding_top="1rem"),
        rx.text(
            "When a merchant installs the app from the Shopify App Store or their admin, the "
            "hub creates the integration itself with these streams (minutes between syncs; "
            "leave one empty to skip it).",
            color_scheme="gray",
            size="2",
        ),
        rx.form(
            rx.hstack(
                rx.foreach(
                    SettingsState.install_streams,
                    lambda row: rx.vstack(
                        rx.text(row["stream"], size="2"),
                        rx.input(
                            name=row["stream"],
                            default_value=row["interval"],
                            type="number",
                            min=1,
                            width="6rem",
                            aria_label=row["stream"] + " interval in minutes",
                        ),
                        spacing="1",
                    ),
                ),
                rx.cond(AuthState.is_admin, submit_button("Save defaults")),
                align="end",
            ),
            on_submit=SettingsState.save_install_defaults,
        ),
        align="start",
    )


class SettingsState(PagedState, AuthState):
    """The General page; its paged table (``page``, ``total``) is the audit log."""

    page_size: ClassVar[int] = AUDIT_PAGE_SIZE
    credentials: list[dict[str, str]] = []
    keys: list[dict[str, str]] = []
    audit: list[dict[str, str]] = []
    key_error: str = ""
    # Shopify-initiated installs: each stream offered, with its default interval ("" = off).
    install_streams: list[dict[str, str]] = []

    @rx.var
    def audit_total_label(self) -> str:
        return counted(self.total, "entry", "entries")

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_settings(self):
        await self._load()

    async def _load(self) -> None:
        self.credentials = _credential_presence()
        self.page = 0

        def load(session):
            try:
                vault = get_vault()
                usage = vault.key_usage(session=session)
                keys = [
                    {
                        "id": key_id,
                        "count": str(count),
                        "state": "newest"
                        if key_id == vault.current_key_id
                        else ("missing" if key_id not in vault.key_ids else "older"),
                    }
                    for key_id, count in usage.items()
                ]
                return keys, ""
            except VaultError as error:
                return [], str(error)

        self.keys, self.key_error = await in_session(load)
        self.install_streams = await in_session(_install_stream_rows)
        await self._reload()

    async def _reload(self) -> None:
        offset = self.page * AUDIT_PAGE_SIZE
        self.audit, self.total = await in_session(
            lambda s: audit_page(session=s, offset=offset, limit=AUDIT_PAGE_SIZE)
        )

    @rx.event
    @requires(Role.ADMIN)
    async def save_install_defaults(self, form: dict[str, str]):
        """What an integration created by an install started from Shopify syncs, how often."""
        user = acting_user()
        try:
            streams = {
                name: int(value) for name, value in form.items() if str(value).strip() != ""
            }
        except ValueError:
            return rx.toast.error("Intervals are whole minutes; leave a stream empty to skip it.")
        try:
            await in_session(
                lambda s: connect_service.set_install_defaults(
                    session=s, streams=streams, actor=user.email
                )
            )
        except InvalidInput as invalid:
            return rx.toast.error(str(invalid))
        self.install_streams = await in_session(_install_stream_rows)
        return rx.toast.success("Saved: installs started from Shopify will sync these.")

    @rx.event
    @requires(Role.ADMIN)
    async def rotate_keys(self):
        user = acting_user()

        def rotate(session):
            from dashboard.services.audit import record_audit

            count = get_vault().rotate(session=session)
            record_audit(
                session=session,
                actor=user.email,
                action="keys.rotate",
                context={"credentials": count},
            )
            return count

        count = await in_session(rotate)
        await self._load()
        return rx.toast.success(f"Re-encrypted {count} credential(s) under the newest key.")


def settings_nav() -> rx.Component:
    return sub_nav(
        "Settings sections",
        ("General", routes.SETTINGS, None),
        ("Account", routes.ACCOUNT, None),
        ("Users", routes.USERS, AuthState.is_admin),
        ("Amazon app", routes.AMAZON_APP, AuthState.is_admin),
        ("Go-live check", routes.GO_LIVE, AuthState.is_admin),
        ("API keys", routes.API_KEYS, AuthState.is_admin),
    )


@template(route=routes.SETTINGS, title="Settings", on_load=SettingsState.load_settings)
def settings_page() -> rx.Component:
    return rx.vstack(
        settings_nav(),
        rx.heading("App credentials", size="4"),
        rx.text(
            "Which platform settings are present. Secrets are never shown.",
            color_scheme="gray",
            size="2",
        ),
        rx.table.root(
            rx.table.body(
                rx.foreach(
                    SettingsState.credentials,
                    lambda c: rx.table.row(rx.table.cell(c["name"]), rx.table.cell(c["state"])),
                )
            ),
            variant="surface",
        ),
        install_defaults_section(),
        rx.heading("Encryption keys", size="4", padding_top="1rem"),
        rx.cond(
            SettingsState.key_error != "",
            rx.callout(SettingsState.key_error, icon="triangle_alert", color_scheme="red"),
        ),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("Key id"),
                    rx.table.column_header_cell("Credentials"),
                    rx.table.column_header_cell("State"),
                )
            ),
            rx.table.body(
                rx.foreach(
                    SettingsState.keys,
                    lambda k: rx.table.row(
                        rx.table.cell(k["id"]), rx.table.cell(k["count"]), rx.table.cell(k["state"])
                    ),
                )
            ),
            variant="surface",
        ),
        rx.cond(
            AuthState.is_admin,
            rx.button(
                rx.icon("key-round"),
                "Re-encrypt under the newest key",
                on_click=SettingsState.rotate_keys,
                variant="soft",
            ),
        ),
        rx.heading("Audit log", size="4", padding_top="1rem"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[rx.table.column_header_cell(h) for h in AUDIT_HEADERS]
                )
            ),
            rx.table.body(
                rx.foreach(SettingsState.audit, audit_row)
            ),
            variant="surface",
            width="100%",
        ),
        pager(
            rx.text(SettingsState.audit_total_label, size="2", color_scheme="gray"),
            page=SettingsState.page,
            page_count=SettingsState.page_count,
            label=SettingsState.page_label,
            previous=SettingsState.previous_page,
            next_page=SettingsState.next_page,
        ),
        width="100%",
        align="start",
    )
