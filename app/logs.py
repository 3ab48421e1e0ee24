"""Logs: with ``CREDITGRAPH_LOG_FORMAT=json`` every line is one JSON object (time, level,
logger, message, and the exception if any), the access lines included, for log
collectors that index fields rather than parse text; the access log, written in
batches."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TextIO

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


class AccessLog:
    """One line per answered HTTP request, in uvicorn's text format or as JSON lines,
    written in batches off the request's path.

    uvicorn's own access log formats and writes each line while the request is
    answered, through the logging module: a record, a formatter, a locked write and a
    flush per request, about a sixth of a gateway call's time (docs/performance.md). A
    request here appends one tuple; ``run`` formats and writes what has gathered every
    ``INTERVAL`` seconds, in one write.
    """

    INTERVAL = 0.1

    def __init__(self, stream: TextIO, *, json: bool, unlogged_agent: str | None = None) -> None:
        """``unlogged_agent``: a User-Agent whose requests are left out (the demo's own
        traffic, ``app.demo_traffic``)."""
        self._stream = stream
        self._json = json
        self.unlogged_agent = None if unlogged_agent is None else unlogged_agent.encode()
        self._pending: list[tuple[float, str, str, str, str, int]] = []

    def request(self, client: str, method: str, path: str, http_version: str, status: int) -> None:
        self._pending.append((time.time(), client, method, path, http_version, status))

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.INTERVAL)
                self.flush()
        finally:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        line = self._json_line if self._json else self._text_line
        self._stream.write("".join(map(line, pending)))
        self._stream.flush()

    @staticmethod
    def _text_line(entry: tuple[float, str, str, str, str, int]) -> str:
        _at, client, method, path, version, status = entry
        phrase = _PHRASES.get(status, "")
        return f'INFO:     {client} - "{method} {path} HTTP/{version}" {status} {phrase}\n'

    @staticmethod
    def _json_line(entry: tuple[float, str, str, str, str, int]) -> str:
        at, client, method, path, version, status = entry
        line = {
            "time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "uvicorn.access",
            "message": f'{client} - "{method} {path} HTTP/{version}" {status}',
            **dict(zip(_ACCESS_FIELDS, (client, method, path, version, status), strict=True)),
        }
        return orjson.dumps(line).decode() + "\n"


_PHRASES = {status.value: status.phrase for status in HTTPStatus}
