"""Filtering a page by one integration, found by typing: only the few best matches travel to
the browser, so the filter stays quick with thousands of integrations.

A page state mixes it in (``class RunsState(IntegrationFilter, AuthState)``) and defines
``_integration_changed``, which reloads its rows; the picker is
``dashboard.components.integration_picker``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import reflex as rx

from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import overview as overview_service
from dashboard.state.guard import requires

MATCHES = 20  # how many matches the list shows; typing more narrows it


class IntegrationFilter(rx.State, mixin=True):
    integration: str = ""  # the chosen integration's id; "" for all
    integration_name: str = ""
    integration_search: str = ""
    integration_matches: list[dict[str, str]] = []

    if TYPE_CHECKING:  # provided by AuthState and by the page state

        async def _integration_changed(self) -> None: ...

    @rx.var
    def integration_more(self) -> bool:
        """The list is cut at MATCHES: there may be more to narrow down."""
        return len(self.integration_matches) >= MATCHES

    @rx.event
    @requires(Role.VIEWER)
    async def search_integrations(self, value: str):
        self.integration_search = value[:200]
        if not value.strip():
            self.integration_matches = []
            return
        self.integration_matches = await in_session(
            lambda s: overview_service.integration_matches(session=s, search=value, limit=MATCHES)
        )

    @rx.event
    @requires(Role.VIEWER)
    async def choose_integration(self, integration_id: str, name: str):
        self.integration, self.integration_name = integration_id, name
        self.integration_search, self.integration_matches = "", []
        await self._integration_changed()

    @rx.event
    @requires(Role.VIEWER)
    async def clear_integration(self):
        self.integration = self.integration_name = ""
        await self._integration_changed()
