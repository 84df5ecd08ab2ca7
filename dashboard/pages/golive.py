"""Settings → Go-live check: `hub doctor` on a page, for the admin about to switch to the real
platforms (database, keys, public URL, app credentials, clock, disk, scheduler lease)."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from dashboard import routes
from dashboard.components.shell import template
from dashboard.models import Role
from dashboard.pages.settings import settings_nav
from dashboard.services import doctor
from dashboard.state.auth import AuthState
from dashboard.state.guard import requires

STATUS_COLOR = {"ok": "green", "warn": "amber", "fail": "red"}


class CheckRow(TypedDict):
    name: str
    status: str
    detail: str
    fix: str


class GoLiveState(AuthState):
    checks: list[CheckRow] = []
    summary: str = ""
    running: bool = False

    @rx.event(background=True)
    @requires(Role.ADMIN)
    async def run_checks(self):
        """The checks call the platforms' token endpoints and the public URL (seconds): in
        the background, the state lock held only to show progress and the result."""
        async with self:
            if self.running:
                return
            self.running, self.summary = True, ""
        try:
            report = await doctor.run_doctor()
        except Exception as error:  # a check that crashes must not leave the button spinning
            async with self:
                self.running = False
                self.summary = f"The check could not finish: {type(error).__name__}. See the log."
            raise
        rows: list[CheckRow] = [
            {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
            for c in report.checks
        ]
        failed = sum(row["status"] == "fail" for row in rows)
        warned = sum(row["status"] == "warn" for row in rows)
        async with self:
            self.checks, self.running = rows, False
            self.summary = (
                f"{failed} failed, {warned} warning(s), {len(rows)} checks"
                if failed or warned
                else f"All {len(rows)} checks passed."
            )


def check_row(row: rx.Var[CheckRow]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.badge(
                row["status"],
                color_scheme=rx.match(row["status"], *STATUS_COLOR.items(), "gray"),
                variant="soft",
            )
        ),
        rx.table.row_header_cell(row["name"]),
        rx.table.cell(
            rx.vstack(
                rx.text(row["detail"], size="2"),
                rx.cond(
                    (row["fix"] != "") & (row["status"] != "ok"),
                    rx.text("Fix: ", row["fix"], size="2", color_scheme="gray"),
                ),
                spacing="1",
            )
        ),
    )


@template(route=routes.GO_LIVE, title="Go-live check", admin_only=True)
def go_live_page() -> rx.Component:
    return rx.vstack(
        settings_nav(),
        rx.text(
            "What an operator gets wrong before switching to the real platforms: the same "
            "checks as `hub doctor`. It calls Shopify's and Amazon's token endpoints with a "
            "made-up code to learn whether they accept the app's credentials.",
            size="2",
            color_scheme="gray",
        ),
        rx.button(
            rx.cond(GoLiveState.running, rx.spinner(size="1"), rx.icon("stethoscope")),
            "Run the checks",
            on_click=GoLiveState.run_checks,
            disabled=GoLiveState.running,
        ),
        rx.cond(GoLiveState.summary != "", rx.text(GoLiveState.summary, weight="medium")),
        rx.cond(
            GoLiveState.checks.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Result"),
                        rx.table.column_header_cell("Check"),
                        rx.table.column_header_cell("What it found"),
                    )
                ),
                rx.table.body(rx.foreach(GoLiveState.checks, check_row)),
                width="100%",
            ),
        ),
        spacing="3",
        width="100%",
        align="start",
    )
