"""The add-integration wizard's state: the details typed so far, checked as they are typed,
and the pending integration it saves when the manager connects or asks for a link."""

from __future__ import annotations

import importlib.util
import uuid

import reflex as rx

from connectors.amazon.regions import MARKETPLACES, REGION_MARKETPLACES
from connectors.errors import InvalidInput
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import app_credentials, schedules
from dashboard.services import integrations as integration_service
from dashboard.services.integrations import AccountTaken
from dashboard.state.auth import AuthState, leave_app
from dashboard.state.guard import acting_user, requires


def _marketplace_options(region: str) -> list[list[str]]:
    """(id, label) of a region's marketplaces, from the connector's one list."""
    marketplaces = (MARKETPLACES[m] for m in REGION_MARKETPLACES.get(region, ()))
    return [[m.id, f"{m.name} ({m.country})"] for m in marketplaces]


AMAZON_AVAILABLE = importlib.util.find_spec("connectors.amazon.connector") is not None


class WizardState(AuthState):
    step: int = 1
    platform: str = ""
    name: str = ""
    name_error: str = ""
    shop_domain: str = ""
    shop_error: str = ""
    shop_normalized: str = ""  # the shop the input names, shown as it is typed
    marketplaces_error: str = ""
    interval_errors: dict[str, str] = {}  # stream -> what is wrong with its interval
    app_error: str = ""
    region: str = "na"
    marketplaces: list[str] = list(REGION_MARKETPLACES["na"][:1])
    streams: dict[str, bool] = {}
    intervals: dict[str, str] = {}
    error: str = ""
    created_id: str = ""
    link_url: str = ""
    link_expires: str = ""
    # The integration holding the shop typed in, when there is one (the wizard warns).
    connected_id: str = ""
    connected_name: str = ""
    # The pending integration this wizard run created: Connect now or a link again reuse it.
    _pending_id: str = ""
    # A custom-distribution app's credentials (optional): backend-only, never sent back to
    # the browser, stored encrypted with the integration and then forgotten here.
    _app_client_id: str = ""
    _app_client_secret: str = ""
    own_app_saved: bool = False

    @rx.var
    def marketplace_options(self) -> list[list[str]]:
        return _marketplace_options(self.region)

    @rx.var
    def stream_options(self) -> list[list[str]]:
        offered = integration_service.PLATFORM_STREAMS.get(self.platform, {})
        return [[name, integration_service.STREAM_LABELS.get(name, name)] for name in offered]

    @rx.event
    @requires(Role.VIEWER, quiet=True)  # only clears this tab's form; a viewer sees a notice
    def reset_wizard(self):
        self.step, self.platform, self.name, self.shop_domain = 1, "", "", ""
        self.shop_error, self.error, self.created_id, self.link_url = "", "", "", ""
        self.name_error, self.shop_normalized, self.marketplaces_error = "", "", ""
        self.interval_errors, self.app_error = {}, ""
        self.region, self.marketplaces = "na", list(REGION_MARKETPLACES["na"][:1])
        self._pending_id, self.connected_id, self.connected_name = "", "", ""
        self._app_client_id, self._app_client_secret, self.own_app_saved = "", "", False

    @rx.event
    @requires(Role.MANAGER)
    def choose_platform(self, platform: str):
        self.platform = platform
        offered = integration_service.PLATFORM_STREAMS[platform]
        self.streams = dict.fromkeys(offered, True)
        self.intervals = {name: str(minutes) for name, minutes in offered.items()}
        self.step = 2

    @rx.event
    @requires(Role.MANAGER)
    def set_name(self, value: str):
        self.name = value[:10_000]
        try:
            integration_service.checked_name(self.name)
            self.name_error = ""
        except InvalidInput as invalid:
            # Said once the manager typed something: an empty field is not an error yet.
            self.name_error = str(invalid) if value.strip() else ""

    @rx.event
    @requires(Role.MANAGER)
    def set_app_client_id(self, value: str):
        self._app_client_id = value

    @rx.event
    @requires(Role.MANAGER)
    def set_app_client_secret(self, value: str):
        self._app_client_secret = value

    @rx.event
    @requires(Role.MANAGER)
    def set_shop_domain(self, value: str):
        self.shop_domain = value[:500]
        try:
            self.shop_normalized = integration_service.shop_from_input(self.shop_domain)
            self.shop_error = ""
        except InvalidInput as invalid:
            self.shop_normalized = ""
            self.shop_error = str(invalid) if value.strip() else ""

    @rx.event
    @requires(Role.MANAGER)
    def set_region(self, value: str):
        self.region = value
        self.marketplaces = list(REGION_MARKETPLACES.get(value, ())[:1])

    @rx.event
    @requires(Role.MANAGER)
    def toggle_marketplace(self, marketplace: str):
        if marketplace in self.marketplaces:
            self.marketplaces = [m for m in self.marketplaces if m != marketplace]
        else:
            self.marketplaces = [*self.marketplaces, marketplace]
        self.marketplaces_error = "" if self.marketplaces else "Choose at least one marketplace."

    @rx.event
    @requires(Role.MANAGER)
    def toggle_stream(self, stream: str):
        self.streams = {**self.streams, stream: not self.streams.get(stream, False)}
        if self.streams[stream]:
            self._check_interval(stream)
        else:  # a stream not synced needs no interval
            self.interval_errors = {k: v for k, v in self.interval_errors.items() if k != stream}

    @rx.event
    @requires(Role.MANAGER)
    def set_interval(self, stream: str, value: str):
        self.intervals = {**self.intervals, stream: value[:12]}
        self._check_interval(stream)

    def _check_interval(self, stream: str) -> int | None:
        """The stream's interval, or None with its error put next to its field."""
        errors = {k: v for k, v in self.interval_errors.items() if k != stream}
        try:
            minutes: int | None = schedules.parse_interval(self.intervals.get(stream, ""))
        except InvalidInput as invalid:
            errors[stream], minutes = str(invalid), None
        self.interval_errors = errors
        return minutes

    def _details_ok(self) -> bool:
        """Check step 2's fields; each error goes next to its field. True when all pass."""
        try:
            integration_service.checked_name(self.name)
            self.name_error = ""
        except InvalidInput as invalid:
            self.name_error = str(invalid)
        if self.platform == "shopify":
            try:
                self.shop_normalized = integration_service.shop_from_input(self.shop_domain)
                self.shop_error = ""
            except InvalidInput as invalid:
                self.shop_normalized, self.shop_error = "", str(invalid)
        else:
            self.marketplaces_error = (
                "" if self.marketplaces else "Choose at least one marketplace."
            )
        return not (self.name_error or self.shop_error or self.marketplaces_error)

    @rx.event
    @requires(Role.MANAGER)
    async def go_to(self, step: int):
        self.error = ""
        if step == 3:
            if not self._details_ok():
                return
            await self._find_connected()
        self.step = step

    async def _create(self) -> str | None:
        """Save the pending integration; None when something must be fixed first (each
        error next to its field, or in the wizard's one callout when it has no field)."""
        actor = acting_user()
        self.error = ""
        if not self._details_ok():
            self.step = 2
            return None
        chosen = [name for name, on in self.streams.items() if on]
        if not chosen:
            self.error = "Choose at least one thing to sync."
            return None
        minutes = {name: self._check_interval(name) for name in chosen}
        if any(value is None for value in minutes.values()):
            return None
        streams = {name: int(value) for name, value in minutes.items() if value is not None}
        platform, name, shop = self.platform, self.name, self.shop_domain
        region, marketplaces = self.region, list(self.marketplaces)
        pending_id = uuid.UUID(self._pending_id) if self._pending_id else None
        try:
            integration = await in_session(
                lambda s: integration_service.save_pending_integration(
                    session=s,
                    pending_id=pending_id,
                    platform=platform,
                    display_name=name,
                    shop_domain=shop or None,
                    region=region,
                    marketplaces=marketplaces,
                    streams=streams,
                    actor=actor,
                )
            )
        except AccountTaken as taken:
            self.connected_id, self.connected_name = str(taken.holder_id), taken.holder_name
            self.error = str(taken)
            return None
        except InvalidInput as invalid:
            self.error = str(invalid)
            return None
        self.created_id = self._pending_id = str(integration.id)
        if self.platform == "shopify" and (self._app_client_id or self._app_client_secret):
            client_id, client_secret = self._app_client_id, self._app_client_secret
            try:
                await in_session(
                    lambda s: app_credentials.save_app_credentials(
                        session=s, integration_id=integration.id, client_id=client_id,
                        client_secret=client_secret, actor=actor.email,
                    )
                )  # fmt: skip
            except InvalidInput as invalid:
                self.app_error = str(invalid)
                return None
            self._app_client_id = self._app_client_secret = ""
            self.own_app_saved, self.app_error = True, ""
        return self.created_id

    @rx.event
    @requires(Role.MANAGER)
    async def connect_now(self):
        integration_id = await self._create()
        if integration_id is None:
            return None  # what to fix is shown once, next to its field
        # The browser goes through the platform's consent page and comes back to the detail.
        return leave_app(f"/api/oauth/{self.platform}/start?integration={integration_id}")

    @rx.event
    @requires(Role.MANAGER)
    async def create_link(self):
        integration_id = await self._create()
        if integration_id is None:
            return None  # what to fix is shown once, next to its field
        actor = acting_user()

        link, token = await in_session(
            lambda s: integration_service.create_connect_link(
                session=s, integration_id=uuid.UUID(integration_id), actor=actor
            )
        )
        self.link_url = integration_service.connect_link_url(token)
        self.link_expires = link.expires_at.isoformat()
        self.step = 4
        return rx.toast.success("Connect link created. Send it to the merchant.")

    async def _find_connected(self) -> None:
        """Note the integration already holding the shop, for the warning on step 3 (an
        Amazon seller is known only once it signs in: its callback refuses a taken one)."""
        platform, shop = self.platform, self.shop_domain
        holder = await in_session(
            lambda s: integration_service.find_connected_account(
                session=s,
                platform=platform,
                shop_domain=integration_service.shop_from_input(shop)
                if platform == "shopify"
                else None,
            )
        )
        self.connected_id = str(holder.id) if holder else ""
        self.connected_name = holder.display_name if holder else ""
