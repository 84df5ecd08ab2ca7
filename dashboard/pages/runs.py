"""Runs: every sync, live, 50 a page; filter by status, platform and integration in SQL;
cancel, retry; a run's log tail."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, cast

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state, pager, status_badge
from dashboard.components.formats import counted, exact_time, number, relative_time
from dashboard.components.integration_picker import integration_picker
from dashboard.components.run_progress import run_progress
from dashboard.components.shell import template
from dashboard.db import in_session
from dashboard.models import Role
from dashboard.services import actions as rules
from dashboard.services import runs as runs_service
from dashboard.services import sync
from dashboard.state.auth import AuthState
from dashboard.state.guard import acting_user, not_an_event, requires
from dashboard.state.integration_filter import IntegrationFilter
from dashboard.state.live import LiveState, assign_changed, live_region
from dashboard.state.paging import PagedState

PAGE_SIZE = 50


class RunsState(LiveState, PagedState, IntegrationFilter, AuthState):
    page_size: ClassVar[int] = PAGE_SIZE
    rows: list[dict] = []
    status_filter: str = "all"
    platform_filter: str = "all"
    selected_run: str = ""
    events: list[dict[str, str]] = []

    @rx.var
    def total_label(self) -> str:
        return counted(self.total, "run")

    @rx.var
    def filtered(self) -> bool:
        return (
            self.status_filter != "all" or self.platform_filter != "all" or bool(self.integration)
        )

    def _query(self) -> tuple[str, str, str, int]:
        status = "" if self.status_filter == "all" else self.status_filter
        platform = "" if self.platform_filter == "all" else self.platform_filter
        return status, platform, self.integration, self.page

    @not_an_event
    async def fetch(self) -> object:
        query = self._query()
        status, platform, integration, page = query
        selected, role = self.selected_run, self.user_role

        def load(session):
            filters = {
                "status": status,
                "platform": platform,
                "integration_id": uuid.UUID(integration) if integration else None,
            }
            total = runs_service.count_runs(session=session, **filters)
            # A page that emptied (runs deleted, a filter narrowed) shows the last one left.
            shown = min(page, max(0, -(-total // PAGE_SIZE) - 1))
            rows = runs_service.list_runs(
                session=session, **filters, offset=shown * PAGE_SIZE, limit=PAGE_SIZE
            )
            for row in rows:  # what each run offers this person (the rule handlers apply)
                row["actions"] = sorted(
                    rules.run_actions(
                        run_status=row["status"], retried=row["resumed_by"] != "",
                        cancel_requested=row["cancel_requested"],
                        status=row["integration_status"], role=role,
                    )
                )  # fmt: skip
            events = (
                runs_service.run_events(session=session, run_id=uuid.UUID(selected))
                if selected
                else []
            )
            return query, rows, total, shown, events

        return await in_session(load)

    @not_an_event
    def apply(self, data: object) -> None:
        query, rows, total, shown, events = cast(tuple[Any, list, int, int, list], data)
        if query != self._query():
            return  # the filters or page changed while this was read; the next read is current
        assign_changed(self, {"rows": rows, "total": total, "page": shown, "events": events})

    @rx.event
    @requires(Role.VIEWER, quiet=True)
    async def load_runs(self):
        await self._reload()

    async def _reload(self) -> None:
        self.apply(await self.fetch())

    async def _integration_changed(self) -> None:
        self.page = 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_status_filter(self, value: str):
        self.status_filter, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def set_platform_filter(self, value: str):
        self.platform_filter, self.page = value, 0
        await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def show_log(self, run_id: str):
        self.selected_run = "" if self.selected_run == run_id else run_id
        await self._reload()

    @rx.event
    @requires(Role.MANAGER)
    async def cancel_run(self, run_id: str):
        if refused := await _refused(run_id, rules.Action.CANCEL):
            return refused
        try:
            await in_session(lambda s: sync.request_cancel(session=s, run_id=uuid.UUID(run_id)))
        except sync.SyncRefused as refused:
            return rx.toast.error(str(refused))
        await self._reload()
        return rx.toast.info("Cancelling: the run stops after its current batch.")

    @rx.event
    @requires(Role.MANAGER)
    async def retry_run(self, run_id: str):
        if refused := await _refused(run_id, rules.Action.RETRY):
            return refused
        try:
            await sync.retry_run(run_id=uuid.UUID(run_id))  # once per run: refused after
        except (ValueError, sync.SyncRefused) as error:
            return rx.toast.error(str(error))
        await self._reload()
        return rx.toast.success("Retry queued.")


async def _refused(run_id: str, action: rules.Action) -> Any:
    """The actions rule on the run as stored now: a toast saying why when it refuses."""
    role = acting_user().role
    try:
        await in_session(
            lambda s: rules.check_run_action(
                session=s, run_id=uuid.UUID(run_id), action=action, role=role
            )
        )
    except (ValueError, rules.ActionRefused) as refused:
        return rx.toast.error(str(refused))
    return None


def progress_cell(row: rx.Var[dict]) -> rx.Component:
    return rx.cond(
        row["status"] == "running",
        run_progress(row),
        rx.text(number(row["records_read"]), " records", size="2"),
    )


def run_actions(row: rx.Var[dict]) -> rx.Component:
    """Only what the run offers (``services.actions``): a retried run has no Retry."""
    offered = row["actions"].to(list[str])
    return rx.fragment(
        rx.cond(
            offered.contains("cancel"),
            rx.button(
                "Cancel",
                size="1",
                variant="soft",
                color_scheme="red",
                on_click=RunsState.cancel_run(row["id"]),
            ),
        ),
        rx.cond(
            offered.contains("retry"),
            rx.button("Retry", size="1", variant="soft", on_click=RunsState.retry_run(row["id"])),
        ),
    )


def run_row(row: rx.Var[dict]) -> rx.Component:
    return rx.fragment(
        rx.table.row(
            rx.table.cell(relative_time(row["created_at"])),
            rx.table.cell(
                rx.link(row["integration"], href="/integrations/" + row["integration_id"].to(str))
            ),
            rx.table.cell(row["stream"]),
            rx.table.cell(row["trigger"]),
            rx.table.cell(status_badge(row["status"])),
            rx.table.cell(progress_cell(row)),
            rx.table.cell(rx.text(row["error"], size="1", color_scheme="red")),
            rx.table.cell(
                rx.hstack(
                    rx.button(
                        "Log", size="1", variant="ghost", on_click=RunsState.show_log(row["id"])
                    ),
                    # Viewers do not see actions they cannot use; the handlers check too.
                    rx.cond(RunsState.can_manage, run_actions(row)),
                )
            ),
        ),
        rx.cond(
            RunsState.selected_run == row["id"],
            rx.table.row(rx.table.cell(run_detail(row), col_span=8)),
        ),
    )


def _when(value: rx.Var) -> rx.Component:
    return exact_time(value)


def _detail_fact(label: str, value: rx.Var | rx.Component) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.text(value, size="2"),
        spacing="0",
        min_width="7rem",
    )


def log_line(event: rx.Var[dict]) -> rx.Component:
    return rx.hstack(
        rx.text(exact_time(event["at"], clock_only=True), size="1", color_scheme="gray"),
        rx.code(event["level"], size="1"),
        rx.text(event["message"], size="1"),
        spacing="2",
        align="start",
    )


RUN_COUNTERS = (
    ("Pages", "pages"), ("Read", "records_read"), ("Inserted", "inserted"),
    ("Updated", "updated"), ("Deleted", "deleted"), ("Skipped", "skipped"),
)  # fmt: skip


def run_detail(row: rx.Var[dict]) -> rx.Component:
    """A run opened with Log: its counters, its timeline and the tail of its log, live."""
    return rx.vstack(
        rx.hstack(
            *[_detail_fact(label, number(row[key])) for label, key in RUN_COUNTERS],
            wrap="wrap",
            spacing="4",
        ),
        rx.hstack(
            _detail_fact("Queued", _when(row["created_at"])),
            _detail_fact("Started", _when(row["started_at"])),
            _detail_fact("Finished", _when(row["finished_at"])),
            _detail_fact("Took", rx.cond(row["took"] != "", row["took"], "—")),
            _detail_fact("Last heartbeat", _when(row["heartbeat_at"])),
            _detail_fact("Attempt", row["attempt"].to(str)),
            _detail_fact("Worker", rx.cond(row["worker"] != "", row["worker"], "—")),
            wrap="wrap",
            spacing="4",
        ),
        rx.cond(
            row["resumed_by"] != "",
            rx.text("Interrupted; continued by run ", rx.code(row["resumed_by"]), size="1"),
        ),
        rx.text("Log (newest last)", size="1", weight="bold"),
        rx.box(
            rx.foreach(RunsState.events, log_line),
            rx.cond(RunsState.events.length() == 0, rx.text("No events yet.", size="1")),
            max_height="16rem",
            overflow_y="auto",
            width="100%",
            aria_label="Run log",
        ),
        spacing="3",
        padding="0.5rem 0",
        width="100%",
    )


@template(route=routes.RUNS, title="Runs", on_load=RunsState.load_runs)
def runs_page() -> rx.Component:
    return live_region(
        rx.vstack(
            rx.hstack(
                rx.select.root(
                    rx.select.trigger(aria_label="Status"),
                    rx.select.content(
                        rx.select.item("All statuses", value="all"),
                        *[
                            rx.select.item(s.capitalize(), value=s)
                            for s in (
                                "queued",
                                "running",
                                "succeeded",
                                "partial",
                                "failed",
                                "cancelled",
                                "interrupted",
                            )
                        ],
                    ),
                    value=RunsState.status_filter,
                    on_change=RunsState.set_status_filter,
                ),
                rx.select.root(
                    rx.select.trigger(aria_label="Platform"),
                    rx.select.content(
                        rx.select.item("All platforms", value="all"),
                        rx.select.item("Shopify", value="shopify"),
                        rx.select.item("Amazon", value="amazon"),
                    ),
                    value=RunsState.platform_filter,
                    on_change=RunsState.set_platform_filter,
                ),
                integration_picker(RunsState),
                wrap="wrap",
                align="center",
            ),
            rx.cond(
                RunsState.rows.length() > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[
                                rx.table.column_header_cell(h)
                                for h in (
                                    "Queued",
                                    "Integration",
                                    "Stream",
                                    "Trigger",
                                    "Status",
                                    "Progress",
                                    "Error",
                                    "",
                                )
                            ]
                        )
                    ),
                    rx.table.body(rx.foreach(RunsState.rows, run_row)),
                    variant="surface",
                    width="100%",
                ),
                rx.cond(
                    RunsState.filtered,
                    empty_state(
                        "search-x",
                        "No run matches",
                        "No run has this status, platform and integration. Change or clear "
                        "the filters above.",
                    ),
                    empty_state(
                        "activity",
                        "No sync runs yet",
                        "Runs appear here as soon as an integration is connected and its "
                        "first sync starts, and update live while they run.",
                    ),
                ),
            ),
            pager(
                rx.text(RunsState.total_label, size="2", color_scheme="gray"),
                page=RunsState.page,
                page_count=RunsState.page_count,
                label=RunsState.page_label,
                previous=RunsState.previous_page,
                next_page=RunsState.next_page,
            ),
            width="100%",
            spacing="4",
        ),
        watch=RunsState.watch,
        stop=RunsState.stop_watching,
    )
