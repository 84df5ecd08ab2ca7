"""Settings -> API keys (admin): the Hub API's keys (created, listed, revoked; a new key is
shown once) and the change webhooks consumers registered, with their delivery history."""

from __future__ import annotations

import uuid
from typing import Any

import reflex as rx
from sqlmodel import Session, col, select

from dashboard import routes
from dashboard.components.common import submit_button
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Integration, Role
from dashboard.services import api_keys, change_webhooks
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, public, requires


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _key_rows(session: Session) -> list[dict[str, str]]:
    names = dict(session.exec(select(Integration.id, Integration.display_name)).all())
    rows = []
    for key in api_keys.list_api_keys(session=session):
        reach = [names.get(uuid.UUID(i), i) for i in key.integration_ids]
        rows.append(
            {
                "id": str(key.id),
                "prefix": f"chk_{key.prefix}_…",
                "name": key.name,
                "scopes": ", ".join(key.scopes),
                "integrations": ", ".join(reach) if reach else "all",
                "rate": f"{key.rate_limit_per_minute}/min",
                "last_used": _when(key.last_used_at) or "never",
                "state": "revoked" if key.revoked_at else "active",
            }
        )
    return rows


def _webhook_rows(session: Session) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    names = dict(session.exec(select(Integration.id, Integration.display_name)).all())
    hooks = {hook.id: hook for hook in change_webhooks.list_webhooks(session=session)}
    webhooks = [
        {
            "integration": names.get(h.integration_id, str(h.integration_id)),
            "kind": h.kind,
            "url": h.url,
            "created": _when(h.created_at),
            "by": h.created_by,
        }
        for h in hooks.values()
    ]
    deliveries = []
    for delivery in change_webhooks.recent_deliveries(session=session, limit=30):
        hook = hooks.get(delivery.webhook_id)
        state = (
            "delivered"
            if delivery.delivered_at
            else "failed"
            if delivery.failed_at
            else "retrying"
            if delivery.attempts
            else "pending"
        )
        deliveries.append(
            {
                "at": _when(delivery.created_at),
                "url": hook.url if hook else "",
                "kind": hook.kind if hook else "",
                "state": state,
                "attempts": str(delivery.attempts),
                "status": str(delivery.last_status or ""),
                "error": delivery.error or "",
            }
        )
    return webhooks, deliveries


def _integration_ids(text: str, known: dict[str, str]) -> list[str]:
    """Ids or names, comma-separated, as the admin typed them."""
    by_name = {name.lower(): integration_id for integration_id, name in known.items()}
    chosen = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            chosen.append(by_name.get(part.lower(), part))
    return chosen


class ApiKeysState(AuthState):
    keys: list[dict[str, str]] = []
    webhooks: list[dict[str, str]] = []
    deliveries: list[dict[str, str]] = []
    integration_names: list[str] = []
    form_error: str = ""
    # The key just created: shown once in a dialog, cleared when closed (or the page reloads).
    new_key: str = ""
    new_key_name: str = ""

    @rx.event
    @requires(Role.ADMIN, quiet=True)
    async def load_api_keys(self):
        await self._load()

    async def _load(self) -> None:
        def load(session: Session) -> tuple[Any, ...]:
            names = session.exec(
                select(Integration.display_name).order_by(col(Integration.display_name))
            )
            return _key_rows(session), *_webhook_rows(session), list(names.all())

        self.keys, self.webhooks, self.deliveries, self.integration_names = await in_session(load)

    @rx.event
    @requires(Role.ADMIN)
    async def create_key(self, form: dict[str, Any]):
        self.form_error = ""
        actor = acting_user().email
        scopes = [scope for scope in api_keys.SCOPES if form.get(scope)]
        try:
            rate = int(form.get("rate_limit") or api_keys.DEFAULT_RATE_LIMIT)
        except ValueError:
            rate = 0

        def create(session: Session) -> tuple[str, str]:
            known = {
                str(i): n for i, n in session.exec(select(Integration.id, Integration.display_name))
            }
            row, key = api_keys.create_api_key(
                session=session,
                name=str(form.get("name") or ""),
                scopes=scopes,
                actor=actor,
                integration_ids=_integration_ids(str(form.get("integrations") or ""), known),
                rate_limit_per_minute=rate,
            )
            return row.name, key

        try:
            self.new_key_name, self.new_key = await in_session(create)
        except api_keys.ApiKeyInvalid as error:
            self.form_error = str(error)
            return rx.toast.error(str(error))
        await self._load()
        return None

    @rx.event
    @requires(Role.ADMIN)
    async def revoke_key(self, key_id: str):
        actor = acting_user().email
        try:
            await in_session(
                lambda s: api_keys.revoke_api_key(session=s, key_id=uuid.UUID(key_id), actor=actor)
            )
        except (LookupError, ValueError):
            return rx.toast.error("No such key.")
        await self._load()
        return rx.toast.success("Key revoked: requests with it are refused from now on.")

    @rx.event
    @public("it only clears the new key this tab shows once")
    def dismiss_key(self):
        self.new_key = self.new_key_name = ""


def key_row(key: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(key["prefix"])),
        rx.table.cell(key["name"]),
        rx.table.cell(key["scopes"]),
        rx.table.cell(key["integrations"]),
        rx.table.cell(key["rate"]),
        rx.table.cell(key["last_used"]),
        rx.table.cell(
            rx.badge(key["state"], color_scheme=rx.cond(key["state"] == "active", "green", "gray"))
        ),
        rx.table.cell(
            rx.cond(
                key["state"] == "active",
                rx.button(
                    "Revoke",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=ApiKeysState.revoke_key(key["id"]),
                    aria_label="Revoke " + key["name"],
                ),
            )
        ),
    )


def new_key_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("API key for ", ApiKeysState.new_key_name),
            rx.dialog.description(
                "Shown once: copy it now into the system that will use it. The hub keeps only "
                "its hash; a lost key is revoked and replaced."
            ),
            rx.hstack(
                rx.code(ApiKeysState.new_key, id="new-api-key", size="3"),
                rx.button(
                    rx.icon("copy"),
                    "Copy",
                    size="1",
                    variant="soft",
                    on_click=[rx.set_clipboard(ApiKeysState.new_key), rx.toast.success("Copied")],
                ),
                align="center",
                padding_y="1rem",
                wrap="wrap",
            ),
            rx.hstack(
                rx.dialog.close(rx.button("Done", on_click=ApiKeysState.dismiss_key)),
                justify="end",
            ),
        ),
        open=ApiKeysState.new_key != "",
        on_open_change=lambda _open: ApiKeysState.dismiss_key(),
    )


def create_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.hstack(
                rx.input(
                    name="name",
                    placeholder="Who uses it (e.g. warehouse ERP)",
                    required=True,
                    aria_label="Name of the new key",
                    width="18rem",
                ),
                rx.input(
                    name="rate_limit",
                    type="number",
                    min=1,
                    max=100000,
                    default_value=str(api_keys.DEFAULT_RATE_LIMIT),
                    aria_label="Requests per minute",
                    width="8rem",
                ),
                rx.text("requests/min", size="2", color_scheme="gray"),
                align="center",
            ),
            rx.hstack(
                *[
                    rx.el.label(
                        rx.checkbox(name=scope),
                        rx.text(scope, size="2"),
                        style={"display": "flex", "gap": "0.4rem"},
                    )
                    for scope in api_keys.SCOPES
                ],
                spacing="4",
                wrap="wrap",
            ),
            rx.input(
                name="integrations",
                placeholder="Only these integrations (names or ids, comma-separated; empty: all)",
                aria_label="Integrations the key may reach",
                width="36rem",
            ),
            submit_button(rx.icon("key-round"), "Create key"),
            align="start",
        ),
        on_submit=ApiKeysState.create_key,
        reset_on_submit=True,
    )


def _table(headers: tuple[str, ...], body: rx.Component) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
        rx.table.body(body),
        variant="surface",
        width="100%",
    )


@template(
    route=routes.API_KEYS,
    title="API keys",
    on_load=[ApiKeysState.dismiss_key, ApiKeysState.load_api_keys],
    admin_only=True,
)
def api_keys_page() -> rx.Component:
    from dashboard.pages.settings import settings_nav

    return rx.vstack(
        settings_nav(),
        rx.text(
            "Keys of the Hub API (/api/v1, reference at ",
            rx.link("/api/v1/docs", href="/api/v1/docs", is_external=True),
            "): each with the scopes it needs and, optionally, the integrations it may reach.",
            size="2",
            color_scheme="gray",
        ),
        create_form(),
        rx.cond(
            ApiKeysState.form_error != "",
            rx.callout(ApiKeysState.form_error, icon="triangle_alert", color_scheme="red"),
        ),
        _table(
            ("Key", "Name", "Scopes", "Integrations", "Limit", "Last used", "State", ""),
            rx.foreach(ApiKeysState.keys, key_row),
        ),
        rx.heading("Change webhooks", size="4", padding_top="1rem"),
        rx.text(
            "URLs API consumers registered to be told when records change.",
            size="2",
            color_scheme="gray",
        ),
        _table(
            ("Integration", "Records", "URL", "Registered", "By"),
            rx.foreach(
                ApiKeysState.webhooks,
                lambda w: rx.table.row(
                    *[rx.table.cell(w[k]) for k in ("integration", "kind", "url", "created", "by")]
                ),
            ),
        ),
        rx.heading("Recent deliveries", size="4", padding_top="1rem"),
        _table(
            ("Queued", "URL", "Records", "State", "Attempts", "HTTP", "Error"),
            rx.foreach(
                ApiKeysState.deliveries,
                lambda d: rx.table.row(
                    *[
                        rx.table.cell(d[k])
                        for k in ("at", "url", "kind", "state", "attempts", "status", "error")
                    ]
                ),
            ),
        ),
        new_key_dialog(),
        width="100%",
        align="start",
    )
