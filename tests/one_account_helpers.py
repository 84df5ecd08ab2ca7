"""What the one-account test modules (tests/test_one_account_connect.py and
tests/test_one_account_wizard_stale_retry.py) share: the shop they connect, and the ``any_db``
fixture that runs a test on SQLite and then on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

SHOP = "one-account.myshopify.com"


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    name = "hub_db" if request.param == "sqlite" else "pg_hub_db"
    yield request.getfixturevalue(name)
