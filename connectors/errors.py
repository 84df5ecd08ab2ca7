"""Typed errors every connector raises. The sync engine maps them to run and integration
status in exactly one place (``dashboard.services.sync``)."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""


class AuthError(ConnectorError):
    """The platform refused our credentials (401/403)."""


class AuthRevoked(AuthError):
    """The merchant revoked access or the refresh token is invalid: re-authorize."""


class RateLimited(ConnectorError):
    """The platform throttled us beyond what the client's limiter absorbed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(ConnectorError):
    """5xx, timeouts, connection errors: worth retrying later."""


class PlatformError(ConnectorError):
    """The platform answered with an error that retrying will not fix."""

    def __init__(self, message: str, *, status: int | None = None, details: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


class MalformedResponse(TransientError):
    """The body could not be parsed or lacks required fields (truncated, corrupted)."""


class InvalidInput(ConnectorError):
    """Input we refuse before any request: a hostile shop domain, an unknown region ..."""


class OAuthError(ConnectorError):
    """An authorization callback we refuse; ``user_message`` says what to do."""

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message or message


class ConsentCancelled(OAuthError):
    """The person on the platform's consent page cancelled: OAuth 2.0's ``access_denied``
    answer (RFC 6749 4.1.2.1), which Login with Amazon sends back to the redirect URI."""
