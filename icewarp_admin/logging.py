"""Log lines as JSON objects (LOG_FORMAT=json), each carrying what the process is working on.

The code that knows the context sets it (the sync service: the run's id, its domain, the phase it is in) and
every line logged meanwhile, by any module, carries it: a log collector can then follow one run across the
worker's lines without parsing messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add these fields to every line logged inside the block (this thread only)."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: object) -> None:
    """Add or change fields until the enclosing log_context block ends (the phase, as a run moves on)."""
    _context.set(MappingProxyType({**_context.get(), **fields}))


def current_log_context() -> Mapping[str, object]:
    return _context.get()


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the record's extras, the
    fields of the current log_context and, for an exception, its traceback as one string."""

    def __init__(self, **options: Any) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"},
            # Django's request object: its repr carries the query string, and the message already names the
            # method, path and user (icewarp_admin.request_logging).
            reserved_attrs=[*RESERVED_ATTRS, "request"],
            **options,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        for name, value in current_log_context().items():
            if value is not None:  # bound to None: no longer true (the phase of a finished run)
                log_data.setdefault(name, value)


def gunicorn_log_config(*, log_format: str) -> dict[str, Any]:
    """Gunicorn's own lines (its errors, the access log) in the console's format: merged by gunicorn into
    its defaults (its `logconfig_dict` setting), so with LOG_FORMAT=json the web's every line is JSON too."""
    formatter: dict[str, Any] = (
        {"()": JsonLogFormatter}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "formatters": {"console": formatter},
        "handlers": {
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "console",
                "stream": "ext://sys.stdout",
            },
            "error": {"class": "logging.StreamHandler", "formatter": "console", "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["error"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
