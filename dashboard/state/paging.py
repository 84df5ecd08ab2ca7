"""A paged table's state: which page is shown, how many there are, Previous and Next.

A page state mixes it in (``class RunsState(LiveState, PagedState, IntegrationFilter,
AuthState)``), sets ``page_size``, keeps ``total`` up to date with its reads and defines
``_reload``, which reads the page ``page`` names; the row under the table is
``dashboard.components.common.pager``. A table that does not count its rows (the Logs page
reads one row past the page to know whether another follows) overrides ``_has_next_page``
and the two labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import reflex as rx

from dashboard.components.common import count_pages, pages_label
from dashboard.models import Role
from dashboard.state.guard import requires


class PagedState(rx.State, mixin=True):
    page: int = 0  # the page shown, from 0
    total: int = 0  # rows matching the page's filters
    page_size: ClassVar[int] = 25

    if TYPE_CHECKING:  # provided by the page state

        async def _reload(self) -> None: ...

    @rx.var
    def page_count(self) -> int:
        return count_pages(self.total, self.page_size)

    @rx.var
    def page_label(self) -> str:
        return pages_label(self.page, self.page_count)

    def _has_next_page(self) -> bool:
        return self.page + 1 < self.page_count

    @rx.event
    @requires(Role.VIEWER)
    async def next_page(self):
        if self._has_next_page():
            self.page += 1
            await self._reload()

    @rx.event
    @requires(Role.VIEWER)
    async def previous_page(self):
        if self.page > 0:
            self.page -= 1
            await self._reload()
