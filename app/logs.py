"""Structured logs: with ``CREDITGRAPH_LOG_FORMAT=json`` every line is one JSON object
(time, level, logger, message, and the exception if any), uvicorn's access lines
included, for log collectors that index fields rather than parse text."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from app.settings import Settings

# uvicorn's access records carry these arguments: (client, method, path, version, status).
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            line.update(zip(_ACCESS_FIELDS, record.args, strict=False))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_config(settings: Settings) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for the settings; None keeps uvicorn's own (text)."""
    if settings.log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        # The root logger takes the application's loggers (app.*) too.
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"level": "INFO"},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"level": "INFO"},
        },
    }
