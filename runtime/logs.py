"""Structured JSON logs. Messages name interactionIds and reasons, never personal data."""
from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import datetime, timezone

# the interaction a stage is handling (the message key), for log lines that name none
current_interaction: ContextVar[str | None] = ContextVar("current_interaction", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("interactionId", "stage", "outcome", "reason"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if "interactionId" not in doc and (iid := current_interaction.get()):
            doc["interactionId"] = iid
        if record.exc_info:
            # the type and where, not the text: exception messages can echo input
            etype = record.exc_info[0]
            doc["exception"] = etype.__name__ if etype else None
        return json.dumps(doc)


LIBRARIES = ("faust", "mode", "aiokafka", "aiohttp", "kafka")
QUIET_LIBRARIES = ("botocore", "aiobotocore")


def configure_logging(level: str) -> None:
    # Faust leaves the root logger at DEBUG and filters in its handler, so every library
    # debug call still formats its record (message values included): costly, and a PII
    # risk if a handler ever lets them through. Cap the libraries at the chosen level.
    lib_level = max(logging.INFO, _level(level))
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(lib_level)
    # botocore logs every request's steps at INFO/DEBUG: under Faust's DEBUG root they would
    # be formatted (and reach the log) for every stored PDF
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, _level(level)))
    # faust.topics logs a failed send with the whole message (its value may hold personal
    # data); runtime/sensors.py reports those failures without it.
    logging.getLogger("faust.topics").setLevel(logging.ERROR)
    log = logging.getLogger("callbill")
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(_level(level))
    log.propagate = False


def worker_logging_config(level: str) -> dict:
    """The worker's whole logging, for Faust (`logging_config`): every line on stdout is one
    JSON object, Faust's, mode's and aiokafka's included, so a log shipper needs no parser for
    plain text. Python warnings are logged too (logging.captureWarnings)."""
    logging.captureWarnings(True)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
        "root": {"level": logging.getLevelName(max(logging.INFO, _level(level))), "handlers": ["json"]},
    }


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"callbill.{name}")


def _level(name: str) -> int:
    """Faust's spellings (warn, crit) and the standard ones."""
    aliases = {"warn": "WARNING", "crit": "CRITICAL"}
    value = logging.getLevelName(aliases.get(name.lower(), name.upper()))
    return value if isinstance(value, int) else logging.INFO


def error_site(exc: BaseException) -> str:
    """Where an exception was raised (file:line), for logs that must not carry its text:
    exception messages can quote input values (pydantic does)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__name__
    code = tb.tb_frame.f_code
    return f"{type(exc).__name__} at {code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno} in {code.co_name}"
