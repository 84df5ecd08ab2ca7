"""Retry counts in logs and errors agree (issue 15): a log once said "retrying (attempt 5)"
where the error said "gave up after 4 attempts"."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from sqlmodel import Session, select

from connectors.errors import TransientError
from connectors.http import with_retries
from dashboard.db import session_scope
from dashboard.models import RunStatus, SyncEvent, SyncRun
from dashboard.services.integrations import create_integration, mark_connected
from dashboard.services.sync import SyncEngine
from tests.fake_connector import FakeConnector


async def test_request_retry_lines_count_as_the_give_up_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def always_503() -> None:
        nonlocal calls
        calls += 1
        raise TransientError(f"GET /orders answered 503 (call {calls})")

    caplog.set_level(logging.WARNING, logger="connectors.http")
    with pytest.raises(TransientError, match=r"\(call 4\)"):
        await with_retries(always_503, attempts=4, initial_wait=0.001, max_wait=0.002)
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.http"]
    failed = [int(m) for line in lines for m in re.findall(r"^attempt (\d+) of 4 failed", line)]
    retried = [int(m) for line in lines for m in re.findall(r"\(attempt (\d+) of 4\)$", line)]
    assert failed == [1, 2, 3] and retried == [2, 3, 4]
    assert (
        lines[-1] == "gave up after 4 attempts: TransientError: GET /orders answered 503 (call 4)"
    )
    assert calls == max(retried) == 4  # the highest attempt a log names is the one that gave up


async def test_a_request_that_recovers_says_nothing_of_giving_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([httpx.ConnectError("refused"), "ok"])

    async def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    caplog.set_level(logging.WARNING, logger="connectors.http")
    assert await with_retries(flaky, attempts=3, initial_wait=0.001, max_wait=0.002) == "ok"
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.http"]
    assert len(lines) == 1 and lines[0].startswith("attempt 1 of 3 failed (ConnectError: refused)")
    assert lines[0].endswith("(attempt 2 of 3)")


async def test_a_runs_log_counts_its_attempts_as_its_error_does(session: Session) -> None:
    integration = create_integration(
        session=session, platform="shopify", display_name="Acme",
        shop_domain="acme.myshopify.com", streams={"products": 15},
    )  # fmt: skip
    mark_connected(session=session, integration_id=integration.id)
    session.commit()

    class Always(set[int]):
        def __contains__(self, item: object) -> bool:
            return True

        def discard(self, item: int) -> None:
            pass

    connector = FakeConnector(total=30, page_size=10)
    connector.fail_transient_at = Always()
    engine = SyncEngine(connector_factory=lambda _: connector, retry_delays=(0.01, 0.01, 0.01))
    [run_id] = await engine.request_sync(integration_id=integration.id, stream="products")
    await engine.wait()
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None and run.status == RunStatus.FAILED.value
        messages = [
            e.message for e in s.exec(select(SyncEvent).where(SyncEvent.run_id == run_id)).all()
        ]
    assert (run.error or "").startswith("gave up after 4 attempts: 503 from the platform")
    retries = [m for m in messages if "retrying in" in m]
    assert [m.split(" failed")[0] for m in retries] == [
        "attempt 1 of 4", "attempt 2 of 4", "attempt 3 of 4"
    ]  # fmt: skip
    assert retries[-1].endswith("(attempt 4 of 4) from the last checkpoint")
