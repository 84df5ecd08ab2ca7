"""A claim reads the head of the queue, not the queue: on PostgreSQL, with statistics taken
while nothing was queued (a quiet night) and then a burst of due runs, the query that picks
the integrations to serve reads its window of the oldest unclaimed runs once, plus the active
runs of each candidate. Measured with ``bench/scale.py --workers 2`` before this held: the
planner re-read the window for every candidate (88 x 260 rows, 33 ms a claim), a third of
the database's time."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg

from dashboard.db import session_scope
from dashboard.services import sync_claims
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync_queue import _queue_runs

pytestmark = pytest.mark.postgres

INTEGRATIONS = 300
LIMIT = 4


def sql_literal(value: object) -> str:
    """A parameter's value written out, for EXECUTE's argument list."""
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


def indexes_used(plan: dict[str, Any]) -> set[str]:
    """The indexes the plan's scans read."""
    used = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        used |= indexes_used(child)
    return used


def rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows the plan's scans of ``table`` produced or filtered out, over all their loops."""
    read = 0
    if plan.get("Relation Name") == table:
        per_loop = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        read += per_loop * plan.get("Actual Loops", 1)
    for child in plan.get("Plans", []):
        read += rows_read(child, table)
    return read


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
def test_a_claim_reads_the_window_once_whatever_the_statistics(
    pg_hub_db: sa.Engine, plan_mode: str
) -> None:
    with session_scope() as s:
        ids = []
        for number in range(INTEGRATIONS):
            integration = create_integration(
                session=s, platform="shopify", display_name=f"Shop {number}",
                shop_domain=f"shop-{number}.myshopify.com",
                streams={"products": 15, "orders": 15, "customers": 15},
            )  # fmt: skip
            mark_connected(session=s, integration_id=integration.id)
            ids.append(integration.id)
    with pg_hub_db.connect() as connection:  # statistics of a quiet moment: nothing queued
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    with session_scope() as s:  # then every stream of every integration falls due at once
        for integration_id in ids:
            _queue_runs(s, integration_id, None, "schedule", False)

    window = sync_claims.WINDOW + LIMIT
    query = sync_claims._servable_query(
        sync_claims._UNOWNED_QUEUED, cap=2, limit=LIMIT, window=window
    ).with_for_update(of=sync_claims.INTEGRATIONS, skip_locked=True, key_share=True)
    # As the server runs it: a prepared statement, its plan made with the parameters' values
    # (custom) or without them (generic: PostgreSQL's choice after five executions).
    compiled = query.compile(
        dialect=asyncpg.dialect(), compile_kwargs={"render_postcompile": True}
    )  # $1-style placeholders, as PREPARE takes them
    values = ", ".join(sql_literal(compiled.params[name]) for name in compiled.positiontup or ())
    with pg_hub_db.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL plan_cache_mode = {plan_mode}")
        connection.exec_driver_sql(f"PREPARE claim AS {compiled.string}")
        [[explained]] = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim({values})"
        ).all()
        served = connection.execute(query).scalars().all()
    read = rows_read(explained[0]["Plan"], "sync_runs")

    assert len(served) == LIMIT
    # The window once, and for each candidate integration (at most the window's) its three
    # active runs, looked up twice (to filter and to order): far below a re-read per candidate.
    assert read <= window + window * 3 * 2, f"the claim read {read} runs of {3 * INTEGRATIONS}"
    assert "ix_sync_runs_unclaimed" in indexes_used(explained[0]["Plan"])
