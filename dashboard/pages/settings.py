"""Settings: users and roles (admin), encryption keys, app credentials, audit log."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import auth as auth_service
from dashboard.services.audit import list_audit
from dashboard.services.auth import PermissionDenied, UserError
from dashboard.services.vault import VaultError, get_vault
from dashboard.settings import get_settings
from dashboard.state.auth import AuthState


def _credential_presence() -> list[dict[str, str]]:
    """Which platform settings are present; the secrets themselves never leave the server."""
    settings = get_settings()
    sandbox = " (sandbox app)" if settings.sandbox else ""
    checks = [
        ("Shopify client id", settings.shopify_client_id),
        ("Shopify client secret", settings.shopify_client_secret),
        ("Amazon app id", settings.amazon_app_id),
        ("Amazon LWA client id", settings.amazon_client_id),
        ("Amazon LWA client secret", settings.amazon_client_secret),
    ]
    return [
        {"name": name, "state": ("set" + sandbox) if value else "missing"} for name, value in checks
    ]


class SettingsState(AuthState):
    credentials: list[dict[str, str]] = []
    keys: list[dict[str, str]] = []
    audit: list[dict[str, str]] = []
    key_error: str = ""

    @rx.event
    async def load_settings(self):
        self.credentials = _credential_presence()

        def load(session):
            entries = [
                {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "target": e.target}
                for e in list_audit(session=session, limit=50)
            ]
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
                return entries, keys, ""
            except VaultError as error:
                return entries, [], str(error)

        self.audit, self.keys, self.key_error = await in_session(load)

    @rx.event
    async def rotate_keys(self):
        try:
            user = await self.require(Role.ADMIN)
        except PermissionDenied as denied:
            return rx.toast.error(str(denied))

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
        await self.load_settings()
        return rx.toast.success(f"Re-encrypted {count} credential(s) under the newest key.")


class UsersState(AuthState):
    users: list[dict[str, str]] = []
    form_error: str = ""

    @rx.event
    async def load_users(self):
        try:
            await self.require(Role.ADMIN)
        except PermissionDenied:
            self.users = []
            return
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
    async def add_user(self, form: dict[str, str]):
        self.form_error = ""
        # The initial password comes from the form and goes straight to the hash: it is never
        # kept in state, so it never travels back to a browser.
        email, role = form.get("email", ""), form.get("role") or "viewer"
        password = form.get("password") or ""
        try:
            actor = await self.require(Role.ADMIN)
            await in_session(
                lambda s: auth_service.create_user(
                    session=s, email=email, role=role, password=password, actor=actor
                )
            )
        except (PermissionDenied, UserError) as error:
            self.form_error = str(error)
            return rx.toast.error(str(error))
        await self.load_users()
        return rx.toast.success(f"Added {email}.")

    @rx.event
    async def change_role(self, user_id: str, role: str):
        import uuid

        try:
            actor = await self.require(Role.ADMIN)
            await in_session(
                lambda s: auth_service.set_role(
                    session=s, user_id=uuid.UUID(user_id), role=role, actor=actor
                )
            )
        except (PermissionDenied, UserError) as error:
            return rx.toast.error(str(error))
        await self.load_users()
        return rx.toast.success("Role changed.")

    @rx.event
    async def toggle_disabled(self, user_id: str, disable: bool):
        import uuid

        try:
            actor = await self.require(Role.ADMIN)
            await in_session(
                lambda s: auth_service.set_disabled(
                    session=s, user_id=uuid.UUID(user_id), disabled=disable, actor=actor
                )
            )
        except (PermissionDenied, UserError) as error:
            return rx.toast.error(str(error))
        await self.load_users()
        return rx.toast.success("User disabled." if disable else "User enabled.")


def settings_nav() -> rx.Component:
    return rx.hstack(
        rx.link("General", href=routes.SETTINGS),
        rx.cond(AuthState.is_admin, rx.link("Users", href=routes.USERS)),
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
                    *[rx.table.column_header_cell(h) for h in ("When", "Who", "What", "Target")]
                )
            ),
            rx.table.body(
                rx.foreach(
                    SettingsState.audit,
                    lambda e: rx.table.row(
                        rx.table.cell(rx.moment(e["at"], from_now=True)),
                        rx.table.cell(e["actor"]),
                        rx.table.cell(e["action"]),
                        rx.table.cell(e["target"]),
                    ),
                )
            ),
            variant="surface",
            width="100%",
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
            rx.cond(
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
        ),
    )


@template(route=routes.USERS, title="Users", on_load=UsersState.load_users, admin_only=True)
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
                    min_length=10,
                    placeholder="Initial password (10+ characters)",
                    aria_label="Initial password",
                    auto_complete="new-password",
                ),
                rx.select(
                    ["viewer", "manager", "admin"],
                    name="role",
                    default_value="viewer",
                    aria_label="Role of the new user",
                ),
                rx.button(rx.icon("user-plus"), "Add user", type="submit"),
                align="center",
            ),
            on_submit=UsersState.add_user,
            reset_on_submit=True,
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
        width="100%",
        align="start",
    )
