"""Runtime settings and the scheduler's job store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from dashboard.models.columns import json_field, ts


class AppSetting(SQLModel, table=True):
    """Small runtime settings an admin changes in the UI (alert webhook URL ...)."""

    __tablename__ = "app_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: dict[str, Any] = json_field()
    updated_at: datetime = ts(nullable=False, default_now=True)


# APScheduler's job store (dashboard/services/scheduler.py), declared with the columns of
# APScheduler 3's SQLAlchemyJobStore so that the schema has one owner: a migration creates
# it, and the drift checks (alembic's, and the one Reflex runs at start-up) know it. The job
# store finds it in place and leaves it as it is.
APSCHEDULER_JOBS = sa.Table(
    "apscheduler_jobs",
    SQLModel.metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)
