"""Structured logs (issue 5 item 7): every log line of the service, ours and the libraries',
goes through structlog's processors: JSON objects in production (``WORKBENCH_LOG_FORMAT=json``)
or readable lines in development (``console``, the default).

Each HTTP request and WebSocket connection gets a request id
(``imworkbench.http.middleware.RequestIdMiddleware``): the client's ``X-Request-Id`` when it is a
sane token, else a fresh one. It is bound to every log line written while the request runs,
returned in the ``X-Request-Id`` response header (legacy endpoints included), and added to
GraphQL errors as ``extensions.requestId``.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Literal, TextIO

import structlog

REQUEST_ID_HEADER = "x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return request_id_var.get()


def _add_request_id(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _drop_color_message(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    # uvicorn passes an ANSI-coloured copy of its message as an extra field.
    event.pop("color_message", None)
    return event


# What uvicorn logs at ERROR, with a traceback, for a client's mistake rather than a fault of
# the server: a text frame that is not UTF-8 (uvicorn closes it 1007, as RFC 6455 §8.1 says).
CLIENT_MISTAKES = frozenset({"Invalid UTF-8 sequence received from client."})


class ClientMistakes(logging.Filter):
    """Logs ``CLIENT_MISTAKES`` at INFO without their traceback (issue 11 item 8: anyone could
    fill the error log with them); every other record passes unchanged, so uvicorn's real
    errors stay ERRORs."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Downgrade a client's mistake; never drops a record."""
        if record.levelno >= logging.ERROR and record.msg in CLIENT_MISTAKES:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_mistakes() -> None:
    """Install ``ClientMistakes`` on uvicorn's error logger (idempotent). The app's lifespan
    calls it, so it holds however uvicorn was started and its logging configured."""
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientMistakes) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(ClientMistakes())


def configure_logging(
    log_format: Literal["console", "json"], level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Send all logging through structlog to ``stream`` (standard error by default): ``json``
    (one object per line: ``timestamp``, ``level``, ``logger``, ``event``, ``request_id``...)
    or ``console``. Idempotent."""
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_request_id,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
