"""Records: browse what was synced, per integration and kind; a record's fields and raw JSON
in a side drawer; the filtered list as a CSV download."""

from __future__ import annotations

import reflex as rx

from dashboard import routes
from dashboard.components.common import empty_state, pager
from dashboard.components.formats import exact_time
from dashboard.components.integration_picker import integration_picker
from dashboard.components.shell import template
from dashboard.services import records_view
from dashboard.state.live import live_region
from dashboard.state.records import CLOSE_BUTTON_ID, DETAILS_BUTTON_PREFIX, RecordsState

__all__ = ["RecordsState", "records_page"]

# The record panel beside the table, and the room the page leaves for it while it is open
# (on a phone the panel takes the whole width, over the page).
PANEL_WIDTH = "min(36rem, 100vw)"
PANEL_ROOM = "min(36rem, 45vw)"


def personal_panel() -> rx.Component:
    """The shown order's buyer and shipping details, or why they are not shown."""
    return rx.fragment(
        rx.cond(
            RecordsState.personal.length() > 0,
            rx.data_list.root(
                rx.foreach(
                    RecordsState.personal,
                    lambda line: rx.data_list.item(
                        rx.data_list.label(line["label"]), rx.data_list.value(line["value"])
                    ),
                ),
                aria_label="Buyer and shipping",
            ),
        ),
        rx.cond(
            RecordsState.personal_note != "",
            rx.callout(RecordsState.personal_note, icon="lock", color_scheme="gray", size="1"),
        ),
    )


def record_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row["external_id"], size="1")),
        rx.cond(RecordsState.shows_integration, rx.table.cell(row["integration"])),
        rx.table.cell(row["c0"]),
        rx.table.cell(row["c1"]),
        rx.table.cell(row["c2"]),
        rx.table.cell(row["c3"]),
        rx.table.cell(
            rx.button(
                "Details",
                size="1",
                variant="ghost",
                aria_label="Details of " + row["external_id"].to(str),
                id=DETAILS_BUTTON_PREFIX + row["id"].to(str),
                on_click=RecordsState.show_record(row["id"]).stop_propagation,
            )
        ),
        # The open record's row stays marked while its drawer is open.
        background=rx.cond(RecordsState.selected == row["id"], rx.color("accent", 3), ""),
        cursor="pointer",
        on_click=RecordsState.show_record(row["id"]),
    )


def detail_field(field: rx.Var[dict[str, str]]) -> rx.Component:
    value = field["value"]
    return rx.data_list.item(
        rx.data_list.label(field["label"], min_width="8rem"),
        rx.data_list.value(
            rx.cond(
                field["is_time"] == "yes",
                exact_time(value),
                rx.cond(value != "", value, "—"),
            ),
            word_break="break-all",
        ),
    )


def record_drawer() -> rx.Component:
    """The selected record in a panel beside the table: its fields, then its raw JSON with a
    copy button. Not modal: the table stays usable (another row's Details shows that one);
    the close button closes it."""
    return rx.cond(
        RecordsState.selected != "",
        rx.box(
            rx.vstack(
                rx.hstack(
                    rx.heading(RecordsState.detail_title, size="4", as_="h2", id="record-title"),
                    rx.spacer(),
                    rx.icon_button(
                        rx.icon("x"),
                        variant="ghost",
                        aria_label="Close",
                        id=CLOSE_BUTTON_ID,
                        on_click=RecordsState.close_record,
                    ),
                    width="100%",
                    align="center",
                ),
                rx.text(
                    rx.code(RecordsState.detail_id, size="1"),
                    rx.cond(
                        RecordsState.detail_integration != "",
                        " · " + RecordsState.detail_integration,
                        "",
                    ),
                    size="2",
                    color_scheme="gray",
                ),
                rx.heading("Fields", size="3", as_="h3"),
                rx.data_list.root(
                    rx.foreach(RecordsState.detail_fields, detail_field),
                    size="1",
                    width="100%",
                ),
                personal_panel(),
                rx.hstack(
                    rx.heading("Raw JSON", size="3", as_="h3"),
                    rx.spacer(),
                    rx.button(
                        rx.icon("copy", size=14),
                        "Copy JSON",
                        size="1",
                        variant="soft",
                        on_click=[
                            rx.set_clipboard(RecordsState.detail_raw),
                            rx.toast.info("JSON copied"),
                        ],
                    ),
                    width="100%",
                    align="center",
                ),
                rx.code_block(
                    RecordsState.detail_raw, language="json", width="100%", wrap_long_lines=True
                ),
                spacing="3",
                width="100%",
            ),
            id="record-drawer",
            role="dialog",
            aria_labelledby="record-title",
            # Below the header (the bell and the account menu stay in reach), at the right; the
            # page makes room for it (PANEL_ROOM), so nothing on it is covered.
            position="fixed",
            top="4.5rem",
            right="0",
            height="calc(100vh - 4.5rem)",
            width=PANEL_WIDTH,
            padding="1.25rem",
            overflow_y="auto",
            background=rx.color("gray", 1),
            border_left=f"1px solid {rx.color('gray', 6)}",
            box_shadow="var(--shadow-5)",
            z_index="50",
        ),
    )


@template(route=routes.RECORDS, title="Records", on_load=RecordsState.load_records)
def records_page() -> rx.Component:
    return live_region(
        records_view_page(), watch=RecordsState.watch, stop=RecordsState.stop_watching
    )


def records_view_page() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.select.root(
                rx.select.trigger(aria_label="Kind of record"),
                rx.select.content(
                    *[
                        rx.select.item(label, value=kind)
                        for kind, (label, _) in records_view.VIEWS.items()
                    ]
                ),
                value=RecordsState.kind,
                on_change=RecordsState.set_kind,
            ),
            integration_picker(RecordsState),
            rx.input(
                placeholder="Search id, title, SKU, email",
                value=RecordsState.search,
                on_change=RecordsState.set_search.debounce(300),
                width="16rem",
                aria_label="Search records",
            ),
            rx.spacer(),
            # Offered, never applied by itself: the rows on screen stay where they are.
            rx.cond(
                RecordsState.changed > 0,
                rx.button(
                    rx.icon("refresh-cw", size=14),
                    RecordsState.changed_label,
                    " · Show",
                    variant="soft",
                    on_click=RecordsState.show_latest,
                ),
            ),
            wrap="wrap",
            width="100%",
            min_height="2.5rem",
        ),
        rx.cond(
            RecordsState.total > 0,
            rx.vstack(
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("External id"),
                            rx.cond(
                                RecordsState.shows_integration,
                                rx.table.column_header_cell("Integration"),
                            ),
                            rx.foreach(
                                RecordsState.headers, lambda h: rx.table.column_header_cell(h)
                            ),
                            rx.table.column_header_cell(""),
                        )
                    ),
                    rx.table.body(rx.foreach(RecordsState.rows, record_row)),
                    variant="surface",
                    width="100%",
                ),
                pager(
                    rx.hstack(
                        rx.text(RecordsState.total_label, size="2", color_scheme="gray"),
                        # A document request, not the app's own routing: the hub streams the
                        # file and the browser saves it.
                        rx.button(
                            rx.link(
                                rx.icon("download", size=14),
                                "Export CSV",
                                href=RecordsState.export_url,
                                reload_document=True,
                            ),
                            as_child=True,
                            size="1",
                            variant="soft",
                        ),
                        align="center",
                    ),
                    page=RecordsState.page,
                    page_count=RecordsState.page_count,
                    label=RecordsState.page_label,
                    previous=RecordsState.previous_page,
                    next_page=RecordsState.next_page,
                ),
                width="100%",
            ),
            empty_state(
                "database",
                "No records here yet",
                "Synced products, orders, inventory and customers show up here once "
                "an integration has run its first sync.",
            ),
        ),
        record_drawer(),
        width="100%",
        spacing="4",
        padding_right=rx.cond(RecordsState.selected != "", PANEL_ROOM, "0"),
    )
