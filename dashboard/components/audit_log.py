"""The audit log's rows: when (relative, exact on hover) and what happened, in words, with
the integration it concerns one click away."""

from __future__ import annotations

import reflex as rx

from dashboard.components.formats import relative_time

AUDIT_HEADERS = ("When", "What happened")


def audit_row(entry: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(relative_time(entry["at"]), white_space="nowrap"),
        rx.table.cell(
            rx.text(entry["sentence"], size="2"),
            rx.cond(
                entry["href"] != "",
                rx.link("Open " + entry["target"].to(str), href=entry["href"], size="1"),
            ),
            # The key the entry is stored under, for a search through the database or logs.
            title=entry["action"],
        ),
    )
