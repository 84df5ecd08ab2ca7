"""The Records page's state: the filtered, paged list of synced records, what changed since
it was read, and the record open in the side panel."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import reflex as rx
from reflex.event import EventSpec
from sqlmodel import Session

from dashboard.api.records_export import RECORDS_CSV
from dashboard.components.formats import counted
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import records_view
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, not_an_event, public, requires
from dashboard.state.integration_filter import IntegrationFilter
from dashboard.state.live import LiveState
from dashboard.state.paging import PagedState

PAGE_SIZE = 25

# The side panel's close button and each row's Details button (prefix, then the record id): the
# panel takes the focus when it opens and gives it back to the row's button when it closes.
CLOSE_BUTTON_ID = "record-close"
DETAILS_BUTTON_PREFIX = "record-details-"

# Escape closes the panel from anywhere on the page, as a dialog's does. Reflex components
# take key events only while focused, so one listener on the document (installed once per
# tab) presses the close button; it leaves an Escape that closes an open menu, popover or
# dialog to that layer (Radix handles it first, in the capture phase, while it is still there).
_ESCAPE_CLOSES_PANEL = (
    "(() => { if (window.hubRecordPanelKeys) return; window.hubRecordPanelKeys = true; "
    "document.addEventListener('keydown', (event) => { "
    "if (event.key !== 'Escape' || event.defaultPrevented) return; "
    "if (document.querySelector('[role=menu], [role=listbox], [role=alertdialog], "
    "[role=dialog]:not(#record-drawer)')) return; "
    f"const close = document.getElementById({json.dumps(CLOSE_BUTTON_ID)}); "
    "if (close) close.click(); }); })()"
)


def focus_when_shown(element_id: str) -> EventSpec:
    """Focus an element as soon as it is on the page: the state change that shows it reaches
    the browser with this script, before React has drawn it (tried for up to a second)."""
    return rx.call_script(
        "(() => { const focus = (tries) => { "
        f"const element = document.getElementById({json.dumps(element_id)}); "
        "if (element) element.focus(); "
        "else if (tries > 0) requestAnimationFrame(() => focus(tries - 1)); }; focus(60); })()"
    )


def _read(session: Session, query: tuple[str, str, str, int]) -> tuple[list[dict[str, str]], int]:
    kind, integration, search, page = query
    return records_view.browse(
        session=session,
        kind=kind,
        integration_id=integration,
        search=search,
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


# Between two looks at the records (each may scan a table: synced_at has no index): at least
# MIN_CHECK_SECONDS while syncs write, at most RECHECK_SECONDS (webhooks write without a run).
MIN_CHECK_SECONDS = 1.0
RECHECK_SECONDS = 10.0


class RecordsState(LiveState, PagedState, IntegrationFilter, AuthState):
    page_size: ClassVar[int] = PAGE_SIZE
    kind: str = "product"
    search: str = ""
    rows: list[dict[str, str]] = []
    # The record open in the side drawer ("" when none) and what the drawer shows of it.
    selected: str = ""
    detail_title: str = ""
    detail_id: str = ""
    detail_integration: str = ""
    detail_fields: list[dict[str, str]] = []
    detail_raw: str = ""
    # The open order's buyer and shipping lines (decrypted for managers and admins only), or
    # the note that it holds some a viewer does not see.
    personal: list[dict[str, str]] = []
    personal_note: str = ""
    # Records stored, updated or deleted in this view since its rows were read. The rows stay
    # put (nothing moves under the cursor); the page offers to show the newest instead.
    changed: int = 0
    # Backend only: what the rows answer, when they were read, the sync activity then.
    _loaded_for: tuple = ()
    _loaded_at: datetime | None = None
    _activity: tuple = ()
    _checked_at: float = 0.0

    @rx.var
    def headers(self) -> list[str]:
        return [records_view.HEADERS[column] for column in records_view.VIEWS[self.kind][1]]

    @rx.var
    def shows_integration(self) -> bool:
        """Rows of several integrations: each says whose it is."""
        return self.integration == ""

    @rx.var
    def export_url(self) -> str:
        """The CSV of what the filter lists (every page), streamed by the hub."""
        query = {"kind": self.kind}
        if self.integration:
            query["integration"] = self.integration
        if self.search.strip():
            query["search"] = self.search
        return f"{RECORDS_CSV}?{urlencode(query)}"

    @rx.var
    def changed_label(self) -> str:
        return counted(self.changed, "new or updated record")

    @rx.var
    def total_label(self) -> str:
        return counted(self.total, "record")

    def _query(self) -> tuple[str, str, str, int]:
        return self.kind, self.integration, self.search, self.page

    @not_an_event
    async def fetch(self) -> object:
        """Each tick: the sync activity of the view's integration (or all). The records
        themselves are looked at only when it moved, and the rows read again only when the
        list was empty: there is nothing on screen to move then."""
        query = self._query()
        kind, integration, search, _page = query
        loaded_at, before, checked_at = self._loaded_at, self._activity, self._checked_at
        if query != self._loaded_for or loaded_at is None:
            return None  # a load is on its way
        empty = self.total == 0

        def load(session: Session) -> object:
            activity = records_view.sync_activity(session=session, integration_id=integration)
            now = time.time()
            waited = now - checked_at
            if not (
                (activity != before and waited >= MIN_CHECK_SECONDS) or waited >= RECHECK_SECONDS
            ):
                return query, before, checked_at, None, None  # not now: still moved next tick
            since = datetime.now(UTC)
            changed = records_view.changed_since(
                session=session, kind=kind, since=loaded_at, integration_id=integration,
                search=search,
            )  # fmt: skip
            fresh = (since, _read(session, query)) if empty and changed else None
            return query, activity, now, changed, fresh

        return await in_session(load)

    @not_an_event
    def apply(self, data: Any) -> None:
        if data is None:
            return
        query, activity, checked_at, changed, fresh = data
        if query != self._query() or query != self._loaded_for:
            return  # the view changed while this was read; its own load is current
        if checked_at != self._checked_at:
            self._activity, self._checked_at = activity, checked_at
        if fresh is not None:
            self._loaded_at, (self.rows, self.total) = fresh
            changed = 0
        if changed is not None and changed != self.changed:
            self.changed = changed

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_records(self):
        await self._reload()
        return rx.call_script(_ESCAPE_CLOSES_PANEL)

    async def _reload(self) -> None:
        query = self._query()
        integration = query[1]

        def load(session: Session) -> tuple:
            since = datetime.now(UTC)
            activity = records_view.sync_activity(session=session, integration_id=integration)
            return since, activity, _read(session, query)

        self._loaded_at, activity, (self.rows, self.total) = await in_session(load)
        self._loaded_for, self._activity, self._checked_at = query, activity, time.time()
        self.changed = 0

    @rx.event
    @requires(Role.VIEWER)
    async def show_latest(self):
        self.page = 0
        await self._reload()

    async def _integration_changed(self) -> None:
        self.page = 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_kind(self, value: str):
        self.kind, self.page = value, 0
        self._close_detail()
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_search(self, value: str):
        self.search, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def show_record(self, record_id: str):
        """Open the side drawer on a record: its fields, its raw JSON and, for an order kept
        with buyer data, those details (decrypted for the roles allowed, each reading
        audited)."""
        kind, user = self.kind, acting_user()

        def read(session: Session) -> tuple[dict[str, Any], list[dict[str, str]], str]:
            detail = records_view.record_detail(session=session, kind=kind, record_id=record_id)
            if not detail:
                return detail, [], ""
            lines, note = records_view.personal_details(
                session=session, kind=kind, record_id=record_id, actor=user.email, role=user.role
            )
            return detail, lines, note

        detail, self.personal, self.personal_note = await in_session(read)
        if not detail:
            self._close_detail()
            return rx.toast.info("This record is no longer stored.")
        self.selected = record_id
        self.detail_title, self.detail_integration = detail["title"], detail["integration"]
        self.detail_id = detail["external_id"]
        self.detail_fields, self.detail_raw = detail["fields"], detail["raw"]
        return [rx.call_script(_ESCAPE_CLOSES_PANEL), focus_when_shown(CLOSE_BUTTON_ID)]

    @rx.event
    @public("it only closes this tab's record panel and reads nothing")
    def close_record(self):
        """Close the panel and give the focus back to the Details button that opened it."""
        record_id = self.selected
        self._close_detail()
        return focus_when_shown(DETAILS_BUTTON_PREFIX + record_id) if record_id else None

    def _close_detail(self) -> None:
        self.selected, self.detail_title, self.detail_integration = "", "", ""
        self.detail_id = ""
        self.detail_fields, self.detail_raw = [], ""
        self.personal, self.personal_note = [], ""
