"""The retry and attempt policy of a run: which failures are retried from the checkpoint,
after how long, and when the run gives up (docs/sync-engine.md, *Retries and errors*)."""

from __future__ import annotations

from connectors.errors import RateLimited, TransientError

RETRY_DELAYS = (2.0, 10.0, 30.0)  # seconds before attempts 2, 3, 4 of a transient failure


def retry_delay(
    error: TransientError | RateLimited, *, attempt: int, delays: tuple[float, ...]
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1`` after ``error`` ended attempt
    ``attempt``; None when the attempts are used up and the run fails."""
    if attempt > len(delays):
        return None
    delay = delays[attempt - 1]
    if isinstance(error, RateLimited) and error.retry_after:
        delay = max(delay, error.retry_after)
    return delay


def gave_up_reason(error: Exception, *, attempts: int) -> str:
    return (
        f"gave up after {attempts} attempts: {error}. The next scheduled run resumes from the "
        "last checkpoint."
    )


def retry_note(error: Exception, *, delay: float, attempt: int, attempts: int) -> str:
    """The run log's line for a failed attempt that is retried, counted like
    ``gave_up_reason``: attempt 4 of 4 failing is followed by "gave up after 4 attempts"."""
    return (
        f"attempt {attempt} of {attempts} failed ({type(error).__name__}: {error}); retrying in "
        f"{delay:.0f} s (attempt {attempt + 1} of {attempts}) from the last checkpoint"
    )
