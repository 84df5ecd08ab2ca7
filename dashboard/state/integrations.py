"""The Integrations page's state: one page of integrations read in SQL with its search,
filters, sort and selection, kept live; bulk pause and resume; discarding stale pending ones."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import reflex as rx
from sqlmodel import Session

from dashboard.components.formats import count, counted
from dashboard.db import in_session
from dashboard.models import Integration, Role, User
from dashboard.services import actions as rules
from dashboard.services import overview as overview_service
from dashboard.services import scheduler, stale_pending, sync
from dashboard.services.audit import record_audit
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, not_an_event, requires
from dashboard.state.live import LiveState
from dashboard.state.paging import PagedState

PAGE_SIZE = 25
HEALTH_FILTER = "health:"  # a status filter value naming a health, not a stored status


DEFAULT_DESCENDING = {"created_at": True, "last_sync": True, "name": False, "status": False}


def _pause_many(session: Session, *, ids: list[str], paused: bool, actor: User) -> tuple[int, int]:
    """Pause or resume each integration; returns (changed, asked). Only those the actions
    rule lets this person pause (resume) change: pending or revoked ones have nothing to
    pause."""
    changed = 0
    wanted = rules.Action.PAUSE if paused else rules.Action.RESUME
    for raw_id in ids:
        integration = session.get(Integration, uuid.UUID(raw_id))
        if integration is None or wanted not in rules.integration_actions(
            status=integration.status, role=actor.role
        ):
            continue
        before = integration.status
        sync.set_paused(session=session, integration_id=integration.id, paused=paused)
        changed += integration.status != before
    record_audit(
        session=session,
        actor=actor.email,
        action="integration.pause" if paused else "integration.resume",
        target=f"{changed} integrations",
        context={"ids": ids},
    )
    return changed, len(ids)


def _read_page(session: Session, query: tuple) -> tuple[list[dict[str, Any]], int]:
    search, platform, status, sort, descending, page = query
    # The filter offers both: "health:failing" is what the Health column shows, "paused" the
    # stored status.
    health_is = status.removeprefix(HEALTH_FILTER) if status.startswith(HEALTH_FILTER) else ""
    return overview_service.list_integrations(
        session=session,
        search=search,
        platform=platform,
        status="" if health_is else status,
        health_is=health_is,
        sort=sort,
        descending=descending,
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


class IntegrationsState(LiveState, PagedState, AuthState):
    page_size: ClassVar[int] = PAGE_SIZE
    rows: list[dict[str, str]] = []
    search: str = ""
    platform_filter: str = "all"
    status_filter: str = "all"
    sort: str = "created_at"
    descending: bool = True
    selected: list[str] = []
    loaded: bool = False
    stale_count: int = 0  # pending integrations nobody connected for a day (see services)
    # Backend only: the query the rows answer, the watermark when they were read, and each
    # shown integration's record-count base (see overview_service.live_record_counts).
    _shown_for: tuple = ()
    _mark: tuple = ()
    _record_bases: dict[str, Any] = {}

    @rx.var
    def total_label(self) -> str:
        return counted(self.total, "integration")

    @rx.var
    def filtered(self) -> bool:
        return bool(self.search) or self.platform_filter != "all" or self.status_filter != "all"

    @rx.var
    def all_selected(self) -> bool:
        return bool(self.rows) and all(row["id"] in self.selected for row in self.rows)

    def _query(self) -> tuple[str, str, str, str, bool, int]:
        platform = "" if self.platform_filter == "all" else self.platform_filter
        status = "" if self.status_filter == "all" else self.status_filter
        return self.search, platform, status, self.sort, self.descending, self.page

    @not_an_event
    async def fetch(self, force: bool = False) -> object:
        """The page as it is now. Each tick costs the watermark and a primary-key read of the
        rows on screen; the filtered, sorted page and its count are read again only when
        either moved (or the query changed)."""
        query = self._query()
        page = query[-1]
        current = not force and query == self._shown_for
        shown = [
            {k: v for k, v in row.items() if k not in ("records", "never_connected")}
            for row in self.rows
        ]
        mark_before, bases, total_before = self._mark, dict(self._record_bases), self.total

        def load(session: Session) -> tuple:
            mark = overview_service.integrations_watermark(session=session)
            rows: list[dict[str, Any]] | None = None
            total, shown_page = total_before, page
            if current and mark == mark_before:
                now = overview_service.integrations_by_id(
                    session=session, ids=[row["id"] for row in shown]
                )
                rows = shown if now == shown else None
            if rows is None:
                rows, total = _read_page(session, query)
                if not rows and page > 0 and total:
                    # The page emptied (integrations deleted, filtered out): show the last one.
                    shown_page = (total - 1) // PAGE_SIZE
                    rows, total = _read_page(session, (*query[:-1], shown_page))
            counts, bases_now = overview_service.live_record_counts(
                session=session, ids=[row["id"] for row in rows], bases=bases
            )
            stale = stale_pending.stale_pending_labels(
                session=session, ids=[row["id"] for row in rows]
            )
            rows = [
                {
                    **row,
                    "records": count(counts[row["id"]]),
                    "never_connected": stale.get(row["id"], ""),
                }
                for row in rows
            ]
            stale_count = stale_pending.stale_pending_count(session=session)
            return query, shown_page, mark, rows, total, bases_now, stale_count

        return await in_session(load)

    @not_an_event
    def apply(self, data: Any) -> None:
        query, shown_page, mark, rows, total, bases, stale_count = data
        if query != self._query():
            return  # the filters or page changed while this was read; the next read is current
        shown_for = (*query[:-1], shown_page)
        if shown_for != self._shown_for:
            self._shown_for = shown_for
        if mark != self._mark:
            self._mark = mark
        if bases != self._record_bases:
            self._record_bases = bases
        # Assign only what changed: every assignment travels to the browser.
        if self.page != shown_page:
            self.page = shown_page
        if self.total != total:
            self.total = total
        if rows != self.rows:
            self.rows = rows
            # A selection is of rows on screen: what leaves the screen leaves the selection.
            shown = {row["id"] for row in rows}
            if any(row_id not in shown for row_id in self.selected):
                self.selected = [row_id for row_id in self.selected if row_id in shown]
        if self.stale_count != stale_count:
            self.stale_count = stale_count
        if not self.loaded:
            self.loaded = True

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_integrations(self):
        await self._reload()

    async def _reload(self) -> None:
        self.apply(await self.fetch(force=True))

    @rx.event
    @requires(Role.VIEWER)
    async def set_search(self, value: str):
        self.search, self.page = value[:200], 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_platform_filter(self, value: str):
        self.platform_filter, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_status_filter(self, value: str):
        self.status_filter, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_sort(self, value: str):
        self.sort, self.page = value, 0
        self.descending = DEFAULT_DESCENDING.get(value, True)
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def reverse_order(self):
        self.descending, self.page = not self.descending, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    def toggle_selected(self, integration_id: str):
        if integration_id in self.selected:
            self.selected = [i for i in self.selected if i != integration_id]
        else:
            self.selected = [*self.selected, integration_id]

    @rx.event
    @requires(Role.VIEWER)
    def select_page(self, checked: bool):
        self.selected = [row["id"] for row in self.rows] if checked else []

    @rx.event
    @requires(Role.MANAGER)
    async def pause_selected(self, paused: bool):
        actor = acting_user()
        ids = list(self.selected)
        if not ids:
            return rx.toast.info("Select integrations first.")
        changed, asked = await in_session(
            lambda s: _pause_many(s, ids=ids, paused=paused, actor=actor)
        )
        scheduler.poke()
        self.selected = []
        await self._reload()
        verb = "Paused" if paused else "Resumed"
        skipped = asked - changed
        note = f"; {skipped} had nothing to {'pause' if paused else 'resume'}" if skipped else ""
        return rx.toast.success(f"{verb} {changed} of {asked}{note}.")

    @rx.event
    @requires(Role.MANAGER)
    async def discard_stale_pending(self):
        actor = acting_user()
        discarded = await in_session(
            lambda s: stale_pending.discard_stale_pending(session=s, actor=actor)
        )
        await self._reload()
        if not discarded:
            return rx.toast.info("No stale pending integration to discard.")
        plural = "" if discarded == 1 else "s"
        return rx.toast.success(f"Discarded {discarded} pending integration{plural}.")
