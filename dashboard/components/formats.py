"""One way to show numbers and times on every page.

Numbers: thousands separators, the same on every screen ("6,004 records"). Text built on
the server uses ``count`` / ``counted``; a number still in the browser (a row's field) uses
``number`` (the same grouping, applied by the browser).

Times: stored and sent as ISO 8601 with their UTC offset; the browser shows them in the
viewer's own time zone (moment.js reads the zone from the browser, so the server never needs
to know it). ``relative_time`` says "3 minutes ago" and shows the exact local time on hover;
``exact_time`` shows that exact time itself (log lines, a run's timeline).
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.vars.base import Var

# The exact local time, as every page shows it: day, month, year, time and the zone's offset.
EXACT_FORMAT = "D MMM YYYY, HH:mm:ss [UTC]Z"
CLOCK_FORMAT = "HH:mm:ss"


def count(value: int) -> str:
    """``6004`` -> ``"6,004"``."""
    return f"{value:,}"


def counted(value: int, singular: str, plural: str | None = None) -> str:
    """``counted(6004, "record")`` -> ``"6,004 records"``; ``counted(1, "entry", "entries")``
    -> ``"1 entry"``."""
    noun = singular if value == 1 else (plural or f"{singular}s")
    return f"{value:,} {noun}"


def number(value: Var[Any] | Any) -> Var[str]:
    """A number held by the browser (a row's field), grouped as ``count`` groups it. A value
    that is not a number yet (a row still loading) shows as it is."""
    var = Var.create(value)
    js = f"((v) => (typeof v === 'number' ? v.toLocaleString('en-US') : String(v ?? '')))({var})"
    return Var(_js_expr=js, _var_type=str, _var_data=var._get_all_var_data())


def relative_time(value: Var[Any] | str, *, empty: str = "never", **props: Any) -> rx.Component:
    """ "3 minutes ago" (kept current), the exact time in the viewer's zone on hover; ``empty``
    when there is no time."""
    moment = rx.moment(
        value, from_now=True, with_title=True, title_format=EXACT_FORMAT, local=True, **props
    )
    if isinstance(value, str):
        return moment if value else rx.text.span(empty)
    return rx.cond(value.to(str) != "", moment, rx.text.span(empty))


def exact_time(
    value: Var[Any] | str, *, clock_only: bool = False, empty: str = "—"
) -> rx.Component:
    """The exact time in the viewer's zone (``HH:mm:ss`` alone with ``clock_only``, the full
    date on hover)."""
    moment = rx.moment(
        value,
        format=CLOCK_FORMAT if clock_only else EXACT_FORMAT,
        with_title=clock_only,
        title_format=EXACT_FORMAT,
        local=True,
    )
    if isinstance(value, str):
        return moment if value else rx.text.span(empty)
    return rx.cond(value.to(str) != "", moment, rx.text.span(empty))
