"""What every sandbox SP-API operation shares: Amazon's error body, query parameters read the
way the models declare them, pagination tokens, and the answer with its rate-limit header."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.sandbox.amazon.data import SellerData
from connectors.sandbox.amazon.sandbox import AmazonSandbox

Handler = Callable[[Request, AmazonSandbox, SellerData, dict[str, str]], Awaitable[Response]]
TWO_MINUTES = timedelta(minutes=2)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def errors_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "details": details}]}


def _request_id() -> str:
    return str(uuid.uuid4())


# --- query parameters, the way the models declare them --------------------------------------


def _param(request: Request, name: str, *, required: bool = False) -> str | None:
    value = request.query_params.get(name)
    if required and not value:
        raise ApiError(400, "InvalidInput", f"Missing required parameter: {name}.")
    return value


def _list_param(request: Request, name: str, *, required: bool = False) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    if required and not values:
        raise ApiError(400, "InvalidInput", f"Missing required parameter: {name}.")
    return values


def _time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidInput", f"Invalid {name}: {value} is not ISO 8601.") from None
    if moment.tzinfo is None:
        raise ApiError(400, "InvalidInput", f"Invalid {name}: a time zone is required.")
    return moment


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "InvalidInput", f"Invalid {name}: {value}.") from None
    if not low <= number <= high:
        raise ApiError(400, "InvalidInput", f"{name} must be between {low} and {high}.")
    return number


def _encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, name: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ApiError(400, "InvalidInput", f"We could not decode your {name}.") from None
    return data


def _check_before(before: datetime | None, now: datetime, name: str) -> datetime:
    latest = now - TWO_MINUTES
    if before is None:
        return latest
    if before > latest:
        raise ApiError(
            400,
            "InvalidInput",
            "The most updated data is 2 minutes after an order is created or last updated. "
            f"{name} must be a date that is at least 2 minutes before current time.",
        )
    return before


def _ok(sandbox: AmazonSandbox, request: Request, body: Any, status: int = 200) -> Response:
    headers = {"x-amzn-RequestId": _request_id()}
    operation = request.scope.get("sp_operation")
    if operation is not None:
        headers["x-amzn-RateLimit-Limit"] = sandbox.rate_header(operation)
    text = "" if body is None else json.dumps(body)
    if request.scope.get("sp_fault") == "malformed" and text:
        text = text[: max(1, len(text) // 2)]
    return Response(text, status_code=status, media_type="application/json", headers=headers)


def _error(error: ApiError, sandbox: AmazonSandbox, request: Request) -> Response:
    headers = {"x-amzn-RequestId": _request_id()}
    operation = request.scope.get("sp_operation")
    if operation is not None and error.status in (400, 404):  # never on 429/401/403
        headers["x-amzn-RateLimit-Limit"] = sandbox.rate_header(operation)
    return JSONResponse(
        errors_body(error.code, error.message, error.details),
        status_code=error.status,
        headers=headers,
    )
