"""Settings: users and roles (admin), your own account, encryption keys, app credentials,
audit log."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from connectors.errors import InvalidInput
from dashboard import routes
from dashboard.components.audit_log import AUDIT_HEADERS, audit_row
from dashboard.components.common import count_pages, pager, pages_label, submit_button
from dashboard.components.formats import counted
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role, User
from dashboard.services import auth as auth_service
from dashboard.services import connect as connect_service
from dashboard.services.audit import audit_page
from dashboard.services.auth import MIN_PASSWORD_LENGTH, UserError
from dashboard.services.integrations import PLATFORM_STREAMS
from dashboard.services.vault import VaultError, get_vault
from dashboard.settings import get_settings
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, public, requires


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


class SettingsState(AuthState):
    credentials: list[dict[str, str]] = []
    keys: list[dict[str, str]] = []
    audit: list[dict[str, str]] = []
    audit_total: int = 0
    audit_page: int = 0
    key_error: str = ""
    # Shopify-initiated installs: each stream offered, with its default interval ("" = off).
    install_streams: list[dict[str, str]] = []

    @rx.var
    def audit_page_count(self) -> int:
        return count_pages(self.audit_total, AUDIT_PAGE_SIZE)

    @rx.var
    def audit_total_label(self) -> str:
        return counted(self.audit_total, "entry", "entries")

    @rx.var
    def audit_page_label(self) -> str:
        return pages_label(self.audit_page, self.audit_page_count)

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_settings(self):
        await self._load()

    async def _load(self) -> None:
        self.credentials = _credential_presence()
        self.audit_page = 0

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
        await self._load_audit()

    async def _load_audit(self) -> None:
        offset = self.audit_page * AUDIT_PAGE_SIZE
        self.audit, self.audit_total = await in_session(
            lambda s: audit_page(session=s, offset=offset, limit=AUDIT_PAGE_SIZE)
        )

    @rx.event
    @requires(Role.VIEWER)
    async def next_audit_page(self):
        if self.audit_page + 1 < self.audit_page_count:
            self.audit_page += 1
            await self._load_audit()

    @rx.event
    @requires(Role.VIEWER)
    async def previous_audit_page(self):
        if self.audit_page > 0:
            self.audit_page -= 1
            await self._load_audit()

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


class UsersState(AuthState):
    users: list[dict[str, str]] = []
    form_error: str = ""
    # A password generated by a reset, shown once in a dialog and cleared when it closes (or
    # the page loads again): the only password that ever travels to a browser.
    one_time_password: str = ""
    one_time_for: str = ""

    @rx.event
    @requires(Role.ADMIN, quiet=True)
    async def load_users(self):
        await self._load_users()

    async def _load_users(self) -> None:
        self.users = await in_session(
            lambda s: [
                {
                    "id": str(u.id),
                    "email": u.email,
                    "role": u.role,
                    "state": "disabled" if u.disabled else "active",
                }
                for u in auth_service.list_users(session=s)
            ]
        )

    @rx.event
    @requires(Role.ADMIN)
    async def add_user(self, form: dict[str, str]):
        self.form_error = ""
        # The initial password comes from the form and goes straight to the hash: it is never
        # kept in state, so it never travels back to a browser.
        email, role = form.get("email", ""), form.get("role") or "viewer"
        password = form.get("password") or ""
        actor = acting_user()
        try:
            await in_session(
                lambda s: auth_service.create_user(
                    session=s, email=email, role=role, password=password, actor=actor
                )
            )
        except UserError as error:
            self.form_error = str(error)
            return rx.toast.error(str(error))
        await self._load_users()
        return rx.toast.success(f"Added {email}.")

    @rx.event
    @requires(Role.ADMIN)
    async def change_role(self, user_id: str, role: str):
        import uuid

        actor = acting_user()
        try:
            await in_session(
                lambda s: auth_service.set_role(
                    session=s, user_id=uuid.UUID(user_id), role=role, actor=actor
                )
            )
        except UserError as error:
            return rx.toast.error(str(error))
        await self._load_users()
        return rx.toast.success("Role changed.")

    @rx.event
    @requires(Role.ADMIN)
    async def toggle_disabled(self, user_id: str, disable: bool):
        import uuid

        actor = acting_user()
        try:
            await in_session(
                lambda s: auth_service.set_disabled(
                    session=s, user_id=uuid.UUID(user_id), disabled=disable, actor=actor
                )
            )
        except UserError as error:
            return rx.toast.error(str(error))
        await self._load_users()
        return rx.toast.success("User disabled." if disable else "User enabled.")

    @rx.event
    @requires(Role.ADMIN)
    async def reset_password(self, user_id: str, email: str):
        import uuid

        actor = acting_user()
        try:
            generated = await in_session(
                lambda s: auth_service.reset_password(
                    session=s, user_id=uuid.UUID(user_id), actor=actor
                )
            )
        except UserError as error:
            return rx.toast.error(str(error))
        self.one_time_password, self.one_time_for = generated or "", email
        await self._load_users()
        return None

    @rx.event
    @public("it only clears the one-time password this tab shows")
    def dismiss_password(self):
        self.one_time_password = self.one_time_for = ""


class AccountState(AuthState):
    form_error: str = ""

    @rx.event
    @requires(Role.VIEWER)
    async def change_password(self, form: dict[str, str]):
        # The passwords go from the form straight to the service: never kept in state.
        current, new = form.get("current") or "", form.get("new") or ""
        self.form_error = ""
        user = acting_user()
        if new != (form.get("repeat") or ""):
            self.form_error = "The new passwords do not match."
            return None
        token, user_id = self.session_token, user.id

        def change(session):
            account = session.get(User, user_id)
            auth_service.change_password(
                session=session, user=account, current=current, new=new, keep_token=token
            )

        try:
            await in_session(change)
        except UserError as error:
            message = str(error)
            self.form_error = (
                message[:1].upper() + message[1:] + ("" if message[-1:] == "." else ".")
            )
            return None
        return rx.toast.success("Password changed. Your other sessions were signed out.")


def settings_nav() -> rx.Component:
    return rx.hstack(
        rx.link("General", href=routes.SETTINGS),
        rx.link("Account", href=routes.ACCOUNT),
        rx.cond(AuthState.is_admin, rx.link("Users", href=routes.USERS)),
        rx.cond(AuthState.is_admin, rx.link("Go-live check", href=routes.GO_LIVE)),
        spacing="4",
        padding_bottom="1rem",
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
            page=SettingsState.audit_page,
            page_count=SettingsState.audit_page_count,
            label=SettingsState.audit_page_label,
            previous=SettingsState.previous_audit_page,
            next_page=SettingsState.next_audit_page,
        ),
        width="100%",
        align="start",
    )


def user_row(user: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(user["email"]),
        rx.table.cell(
            rx.select(
                ["admin", "manager", "viewer"],
                value=user["role"],
                on_change=lambda role: UsersState.change_role(user["id"], role),
                aria_label="Role",
            )
        ),
        rx.table.cell(user["state"]),
        rx.table.cell(
            rx.hstack(
                rx.cond(
                    user["email"] == UsersState.user_email,
                    rx.link("Change your password", href=routes.ACCOUNT, size="2"),
                    reset_dialog(user),
                ),
                enable_button(user),
                align="center",
            )
        ),
    )


def reset_dialog(user: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button("Reset password", size="1", variant="soft")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Reset the password of ", user["email"], "?"),
            rx.alert_dialog.description(
                "A new password is generated and shown to you once. Their current password "
                "stops working and they are signed out everywhere."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button(
                        "Reset password",
                        color_scheme="red",
                        on_click=UsersState.reset_password(user["id"], user["email"]),
                    )
                ),
                justify="end",
                padding_top="1rem",
            ),
        ),
    )


def one_time_password_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("New password for ", UsersState.one_time_for),
            rx.dialog.description(
                "Shown once: copy it now and give it to them over a safe channel. They were "
                "signed out everywhere and can change it on their Account page after signing in."
            ),
            rx.hstack(
                rx.code(UsersState.one_time_password, id="one-time-password", size="4"),
                rx.button(
                    rx.icon("copy"),
                    "Copy",
                    size="1",
                    variant="soft",
                    on_click=[
                        rx.set_clipboard(UsersState.one_time_password),
                        rx.toast.success("Copied"),
                    ],
                ),
                align="center",
                padding_y="1rem",
            ),
            rx.hstack(
                rx.dialog.close(rx.button("Done", on_click=UsersState.dismiss_password)),
                justify="end",
            ),
        ),
        open=UsersState.one_time_password != "",
        on_open_change=lambda _open: UsersState.dismiss_password(),
    )


def enable_button(user: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.cond(
        user["state"] == "active",
        rx.button(
            "Disable",
            size="1",
            variant="soft",
            color_scheme="red",
            on_click=UsersState.toggle_disabled(user["id"], True),
        ),
        rx.button(
            "Enable",
            size="1",
            variant="soft",
            on_click=UsersState.toggle_disabled(user["id"], False),
        ),
    )


@template(
    route=routes.USERS,
    title="Users",
    on_load=[UsersState.dismiss_password, UsersState.load_users],
    admin_only=True,
)
def users_page() -> rx.Component:
    return rx.vstack(
        settings_nav(),
        rx.form(
            rx.hstack(
                rx.input(
                    name="email",
                    placeholder="new.user@company.com",
                    type="email",
                    required=True,
                    aria_label="Email of the new user",
                    width="18rem",
                ),
                rx.input(
                    name="password",
                    type="password",
                    required=True,
                    min_length=MIN_PASSWORD_LENGTH,
                    placeholder=f"Initial password ({MIN_PASSWORD_LENGTH}+ characters)",
                    aria_label="Initial password",
                    auto_complete="new-password",
                ),
                rx.select(
                    ["viewer", "manager", "admin"],
                    name="role",
                    default_value="viewer",
                    aria_label="Role of the new user",
                ),
                submit_button(rx.icon("user-plus"), "Add user"),
                align="center",
            ),
            on_submit=UsersState.add_user,
            reset_on_submit=True,
            method="post",
        ),
        rx.cond(
            UsersState.form_error != "",
            rx.callout(UsersState.form_error, icon="triangle_alert", color_scheme="red"),
        ),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[rx.table.column_header_cell(h) for h in ("Email", "Role", "State", "")]
                )
            ),
            rx.table.body(rx.foreach(UsersState.users, user_row)),
            variant="surface",
            width="100%",
        ),
        one_time_password_dialog(),
        width="100%",
        align="start",
    )


def password_input(name: str, label: str, autocomplete: str) -> rx.Component:
    return rx.vstack(
        rx.el.label(label, html_for=name, font_size="14px", font_weight="500"),
        rx.input(
            id=name,
            name=name,
            type="password",
            required=True,
            auto_complete=autocomplete,
            width="18rem",
        ),
        spacing="1",
    )


@template(route=routes.ACCOUNT, title="Account")
def account_page() -> rx.Component:
    return rx.vstack(
        settings_nav(),
        rx.text(
            "Signed in as ", rx.text.strong(AuthState.user_email), " (", AuthState.user_role, ")"
        ),
        rx.heading("Change your password", size="4", padding_top="1rem"),
        rx.form(
            rx.vstack(
                password_input("current", "Current password", "current-password"),
                password_input(
                    "new",
                    f"New password ({MIN_PASSWORD_LENGTH}+ characters)",
                    "new-password",
                ),
                password_input("repeat", "Repeat the new password", "new-password"),
                rx.cond(
                    AccountState.form_error != "",
                    rx.callout(AccountState.form_error, icon="triangle_alert", color_scheme="red"),
                ),
                submit_button(rx.icon("key-round"), "Change password"),
                rx.text(
                    "Your other sessions are signed out; this one stays signed in.",
                    size="2",
                    color_scheme="gray",
                ),
                spacing="3",
            ),
            on_submit=AccountState.change_password,
            reset_on_submit=True,
            method="post",
        ),
        width="100%",
        align="start",
    )
