"""A stream's schedule: an interval in minutes or a cron expression, checked the same way in
the wizard, the Settings tab and the service, and turned into the scheduler's trigger.

Bounds: a stream runs at most every 5 minutes (the platforms' rate limits are shared by all
of an account's streams) and at least once every 7 days (a checkpoint older than that risks
falling out of the platforms' change windows)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connectors.errors import InvalidInput

MIN_INTERVAL_MINUTES = 5
MAX_INTERVAL_MINUTES = 7 * 24 * 60
CRON_MAX_LENGTH = 120
# How many upcoming runs of a cron expression are checked against the bounds (and how many
# the Settings tab shows).
CRON_RUNS_CHECKED = 12
NEXT_RUNS_SHOWN = 3


def parse_interval(text: str | int) -> int:
    """Whole minutes between MIN_ and MAX_INTERVAL_MINUTES, from what was typed; raises
    InvalidInput with a sentence that says what to fix (an empty field is an error, not a
    default)."""
    raw = str(text).strip()
    if not raw:
        raise InvalidInput("Enter how often to sync, in minutes.")
    try:
        minutes = int(raw)
    except ValueError:
        raise InvalidInput("Enter the interval as whole minutes, for example 15.") from None
    return check_interval(minutes)


def check_interval(minutes: int) -> int:
    if minutes < MIN_INTERVAL_MINUTES:
        raise InvalidInput(f"The interval must be at least {MIN_INTERVAL_MINUTES} minutes.")
    if minutes > MAX_INTERVAL_MINUTES:
        raise InvalidInput(
            f"The interval must be at most 7 days ({MAX_INTERVAL_MINUTES:,} minutes)."
        )
    return minutes


def cron_trigger(expression: str) -> CronTrigger:
    """APScheduler's trigger for a five-field cron expression (UTC); raises InvalidInput when
    it is not one, or runs more often than every 5 minutes or less than weekly."""
    expression = " ".join(expression.split())
    if not expression:
        raise InvalidInput("Enter a cron expression, for example 0 */6 * * *.")
    if len(expression) > CRON_MAX_LENGTH:
        raise InvalidInput(f"A cron expression has at most {CRON_MAX_LENGTH} characters.")
    if len(expression.split(" ")) != 5:
        raise InvalidInput(
            "A cron expression has five fields: minute, hour, day of month, month, day of week."
        )
    try:
        trigger = _crontab(expression)
    except ValueError as error:
        raise InvalidInput(f"That cron expression is not valid: {error}.") from None
    runs = upcoming_runs(trigger, count=CRON_RUNS_CHECKED, now=datetime(2026, 1, 1, tzinfo=UTC))
    if not runs:
        raise InvalidInput("That cron expression never runs.")
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    if not gaps:
        raise InvalidInput("That cron expression never repeats.")
    if min(gaps) < timedelta(minutes=MIN_INTERVAL_MINUTES):
        raise InvalidInput(
            f"That cron expression runs more often than every {MIN_INTERVAL_MINUTES} minutes."
        )
    if max(gaps) > timedelta(minutes=MAX_INTERVAL_MINUTES):
        raise InvalidInput("That cron expression runs less often than once every 7 days.")
    return trigger


DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _standard_days(field: str) -> str:
    """A numeric day-of-week field in standard cron terms (0 and 7 are Sunday) as day names:
    APScheduler numbers days from Monday, so "1-5" would otherwise mean Tuesday to Saturday."""
    if not any(c.isdigit() for c in field) or any(c.isalpha() for c in field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first_text, last_text = span.split("-", 1)
            first, last = int(first_text), int(last_text)
        else:
            first = last = int(span)
        if not 0 <= first <= 7 or not 0 <= last <= 7 or first > last or step < 1:
            raise ValueError(f"{part!r} is not a day of the week from 0 to 7")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(DAY_NAMES[day] for day in sorted(days))


def _crontab(expression: str) -> CronTrigger:
    minute, hour, day, month, day_of_week = expression.split(" ")
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month,
        day_of_week=_standard_days(day_of_week), timezone=UTC,
    )  # fmt: skip


def normalized_cron(expression: str | None) -> str | None:
    """The cron expression as stored (single spaces), checked; None for none."""
    if expression is None or not expression.strip():
        return None
    cron_trigger(expression)
    return " ".join(expression.split())


def upcoming_runs(
    trigger: BaseTrigger, *, count: int = NEXT_RUNS_SHOWN, now: datetime | None = None
) -> list[datetime]:
    """The trigger's next ``count`` fire times after ``now`` (UTC, without jitter)."""
    moment = now or datetime.now(UTC)
    runs: list[datetime] = []
    previous = None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        runs.append(fire)
        previous, moment = fire, fire + timedelta(microseconds=1)
    return runs


def next_cron_runs(expression: str, *, count: int = NEXT_RUNS_SHOWN) -> list[datetime]:
    """The next runs of a cron expression from now; raises InvalidInput like cron_trigger."""
    return upcoming_runs(cron_trigger(expression), count=count)


def trigger_for(*, minutes: int, cron: str | None, seconds_per_minute: float = 60.0) -> BaseTrigger:
    """The scheduler's trigger of a stream: its cron when it has one, else its interval
    (jittered, so many integrations on one interval spread over time)."""
    if cron:
        return _crontab(cron)
    seconds = minutes * seconds_per_minute
    return IntervalTrigger(seconds=seconds, jitter=int(min(60, seconds // 10)))


def describe(*, minutes: int, cron: str | None) -> str:
    """A schedule in words for tables: "every 15 min", "cron 0 */6 * * * (UTC)"."""
    if cron:
        return f"cron {cron} (UTC)"
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"every {days} day{'' if days == 1 else 's'}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"every {hours} hour{'' if hours == 1 else 's'}"
    return f"every {minutes} min"
