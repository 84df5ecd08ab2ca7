"""The notification center in the header: failed runs and integrations needing reconnection.

Live like the pages (its own watcher, see ``live.py``). Read state is shared by the team, so
marking read is a manager's action; viewers see the same list.
"""

from __future__ import annotations

import uuid
from typing import Any

import reflex as rx

from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import alerts
from dashboard.state.auth import AuthState
from dashboard.state.guard import not_an_event, requires
from dashboard.state.live import LiveState, assign_changed

SHOWN = 20


class NotificationState(LiveState, AuthState):
    unread: int = 0
    items: list[dict[str, Any]] = []

    @rx.var
    def unread_label(self) -> str:
        return "9+" if self.unread > 9 else str(self.unread)

    @rx.var
    def bell_label(self) -> str:
        return f"Notifications, {self.unread} unread" if self.unread else "Notifications"

    @not_an_event
    async def fetch(self) -> object:
        def load(session):
            return (
                alerts.unread_count(session=session),
                alerts.notification_rows(session=session, limit=SHOWN),
            )

        return await in_session(load)

    @not_an_event
    def apply(self, data: Any) -> None:
        unread, items = data
        assign_changed(self, {"unread": unread, "items": items})

    @rx.event
    @requires(Role.MANAGER)
    async def mark_read(self, notification_id: str):
        await in_session(
            lambda s: alerts.mark_read(session=s, notification_id=uuid.UUID(notification_id))
        )
        self.apply(await self.fetch())
        return None

    @rx.event
    @requires(Role.MANAGER)
    async def mark_all_read(self):
        await in_session(lambda s: alerts.mark_all_read(session=s))
        self.apply(await self.fetch())
        return rx.toast.success("All notifications marked read.")
