"""A run's page lines say what the rate limit left (issue 13, logs worth reading): Shopify's
query cost and the points left in the shop's bucket, the SP-API operation's rate. Against the
sandbox over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlmodel import Session

from dashboard.db import session_scope
from dashboard.services import runs
from tests import test_amazon_sync as amazon
from tests import test_shopify_sync as shopify
from tests.sandbox_server import running_sandbox


@pytest.fixture
def sandbox() -> Iterator[str]:
    shopify._throttles.clear()
    with running_sandbox(seed=4, time_scale=50) as (base, _app):
        yield base
    shopify._throttles.clear()


def page_lines(run_id: object) -> list[str]:
    with session_scope() as s:
        log = [e["message"] for e in runs.run_events(session=s, run_id=run_id)]
    return [line for line in log if line.startswith("page ")]


async def test_shopify_pages_log_the_query_cost_and_the_points_left(
    session: Session, sandbox: str
) -> None:
    integration_id = shopify.connect(session, sandbox, products=30)
    engine = shopify.engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="products")
    await engine.wait()
    lines = page_lines(run_id)
    assert lines
    assert all(
        re.search(r"read so far; (Products|ProductsCount) cost \d+ points?, \d+ of \d+ left$", line)
        for line in lines
    ), lines


async def test_amazon_pages_log_the_operations_rate(session: Session, sandbox: str) -> None:
    integration_id = amazon.connect(session, sandbox, orders=12, listings=2, fba_items=2)
    engine = amazon.engine_for(sandbox)
    [run_id] = await engine.request_sync(integration_id=integration_id, stream="orders")
    await engine.wait()
    lines = page_lines(run_id)
    assert lines
    assert all(
        re.search(
            r"read so far; SP-API \w+ allows [\d.e-]+ calls/s "
            r"\((x-amzn-RateLimit-Limit|usage plan)\)$",
            line,
        )
        for line in lines
    ), lines
