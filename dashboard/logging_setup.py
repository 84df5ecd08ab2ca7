"""The backend's log output: one line per event, JSON or text (``HUB_LOG_FORMAT``), at
``HUB_LOG_LEVEL``, on standard output.

Every line carries the id of what it belongs to: ``request_id`` for an HTTP request or a
websocket connection (``RequestIdMiddleware``), ``run_id`` for a sync run and
``integration_id`` where known (``bind_log_context``). They are context variables, so a task
started inside a request or a run inherits them, and a worker thread started with
``asyncio.to_thread`` too.

Secrets stay out by construction, not by scrubbing here: the platform request line has no
query (``connectors.http``), httpx's own request line is redacted by its logger's filter.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["json", "text"]

_CONTEXT: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"hub_log_{name}", default=None)
    for name in ("request_id", "run_id", "integration_id")
}
# Loggers that come with their own handlers (the ASGI servers'): routed through ours.
_SERVER_LOGGERS = ("_granian", "granian", "granian.access", "uvicorn", "uvicorn.error",
                   "uvicorn.access")  # fmt: skip
# What a LogRecord carries anyway: the rest came in ``extra=`` and goes into the JSON line.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_OURS = "_hub_handler"  # marks the handler configure_logging installed
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def bind_log_context(**values: object) -> None:
    """Attach ``run_id``/``integration_id``/``request_id`` to every later line of this task
    (and of the tasks and threads it starts)."""
    for name, value in values.items():
        _CONTEXT[name].set(None if value is None else str(value))


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """``bind_log_context`` for a block only."""
    tokens = {name: _CONTEXT[name].set(None if v is None else str(v)) for name, v in values.items()}
    try:
        yield
    finally:
        for name, token in tokens.items():
            _CONTEXT[name].reset(token)


def detached_log_context() -> contextvars.Context:
    """A copy of this context without the ids of the request or run: for a task started
    here that serves others too (a queue's consumer started by the first request to use it
    would otherwise tag every later line with that request's id)."""
    context = contextvars.copy_context()
    for var in _CONTEXT.values():
        context.run(var.set, None)
    return context


def current_log_context() -> dict[str, str]:
    return {name: value for name, var in _CONTEXT.items() if (value := var.get()) is not None}


class _ContextFilter(logging.Filter):
    """Puts the ids of the current request or run on the record (the handler's filter, so
    records of every logger get them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_log_context().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the context ids,
    and the fields given as ``extra=``. A message that is itself a JSON object (the sync
    engine's ``log_json`` lines) is merged in, so its fields are searchable too."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                fields = None
            if isinstance(fields, dict) and isinstance(fields.get("message"), str):
                line.update(fields)
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                line.setdefault(name, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message [request_id=... run_id=...]``: for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(
            f"{name}={value}"
            for name in _CONTEXT
            if (value := getattr(record, name, None)) is not None
        )
        return f"{text} [{ids}]" if ids else text


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a line is logged (a test's capture, a
    redirected stream), not to the one there was at start-up."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


class _NoHttpxRequestLines(logging.Filter):
    """httpx's own ``HTTP Request: ...`` INFO line: ``hub.platform`` logs each request once,
    with its platform, operation and duration, and without the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "httpx" and record.levelno == logging.INFO)


def configure_logging(
    *, log_format: LogFormat = "text", level: str | int = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Route every logger of the process through one handler on ``stream`` (standard output
    by default): ``hub serve``'s workers call it at start-up. Calling it again replaces the
    handler it installed before; the ASGI server's loggers are routed through it too."""
    handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    handler.addFilter(_NoHttpxRequestLines())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        for old in list(server_logger.handlers):
            server_logger.removeHandler(old)
        server_logger.propagate = True
    # /api/ready reads the schema revision through alembic, whose context announces itself at
    # INFO on every probe (twice a minute from a load balancer): nothing an operator acts on.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    return handler


def configure_from_settings(settings: Any) -> logging.Handler:
    """``configure_logging`` with ``HUB_LOG_FORMAT`` and ``HUB_LOG_LEVEL``."""
    return configure_logging(log_format=settings.log_format, level=settings.log_level)


class RequestIdMiddleware:
    """Gives each HTTP request (and websocket connection) an id for its log lines: the
    caller's ``X-Request-ID`` when it is a plain token (a proxy's), a new one otherwise; it
    is echoed in the answer's ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id_of(scope.get("headers") or [])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _request_id_of(headers: Mapping[bytes, bytes] | list[tuple[bytes, bytes]]) -> str:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == b"x-request-id":
            given = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(given):
                return given
    return _new_request_id()


class _RequestIds:
    """Ids for requests that bring none: this process's random prefix and a counter, 32 hex
    digits like a uuid4's. A uuid4 per request read the kernel's random source, a call that
    gives up the GIL: under load the event loop then waited for it behind the database
    threads (9 % of the loop's time at 1,000 webhooks/s). A forked worker draws its own
    prefix."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):020x}"


_new_request_id = _RequestIds()
