"""The bell in the header: the open incidents, one per integration and cause.

An outage of four streams is one incident, so it is one item here, with its plain-words
title, what to do and a link to the integration; an incident resolved (a run succeeded,
access returned) drops off at the next tick. Live like the pages (its own watcher, see
``live.py``): one count and one short list per tick, both off the incidents' status index.
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from dashboard.db import in_session
from dashboard.services import incidents
from dashboard.state.auth import AuthState
from dashboard.state.guard import not_an_event
from dashboard.state.live import LiveState, assign_changed, shared_read

SHOWN = 20


class NotificationState(LiveState, AuthState):
    open_incidents: int = 0
    items: list[dict[str, Any]] = []

    @rx.var
    def count_label(self) -> str:
        return "9+" if self.open_incidents > 9 else str(self.open_incidents)

    @rx.var
    def bell_label(self) -> str:
        if not self.open_incidents:
            return "Notifications"
        noun = "incident" if self.open_incidents == 1 else "incidents"
        return f"Notifications, {self.open_incidents} open {noun}"

    @rx.var
    def more_label(self) -> str:
        hidden = self.open_incidents - len(self.items)
        return f"and {hidden} more" if hidden > 0 else ""

    @not_an_event
    async def fetch(self) -> object:
        def load(session):
            return (
                incidents.open_count(session=session),
                incidents.list_incidents(session=session, limit=SHOWN),
            )

        # Every page has the bell, and every viewer sees the same incidents: one read per
        # change for all of them.
        return await shared_read("bell", lambda: in_session(load))

    @not_an_event
    def apply(self, data: Any) -> None:
        open_incidents, items = data
        assign_changed(self, {"open_incidents": open_incidents, "items": items})
