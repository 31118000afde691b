"""Structured (one JSON object per line) logs for the service's own events."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from typing import Any

ACCESS_LOGGER = "sd_turbo.access"
# One line per request with its decision (allowed / rejected and why): the audit trail.
AUDIT_LOGGER = "sd_turbo.audit"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            payload.update(fields)
        else:
            payload["message"] = record.getMessage()
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the service's loggers (Ray keeps its own format for its own)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("sd_turbo", "serve_app"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def prompt_hash(prompt: str) -> str:
    """Logs carry a hash of the prompt, never its text."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": {"event": event, **fields}})
