"""Structured JSON logs as Cloud Logging reads them: severity, message, and the batch id.

Log records carry ids, counts and reasons only, never file contents.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_FIELDS = (
    "batch_id",
    "rows",
    "rows_read",
    "rows_loaded",
    "reason",
    "tests_failed",
    "stage",
    "object",
    "event_id",
    "status",
    "execution",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname if record.levelname != "WARNING" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        for key in _FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_function_logging(stream=None) -> None:
    """JSON lines on stdout for the pipeline's loggers (what Cloud Functions ship to Cloud Logging)."""
    logger = logging.getLogger("retail_pipeline")
    if any(getattr(h, "_retail_json", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._retail_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_to_file(path) -> None:
    """JSON lines into a file instead (the local runtime keeps the terminal for progress)."""
    logger = logging.getLogger("retail_pipeline")
    for h in list(logger.handlers):
        if getattr(h, "_retail_json", False):
            logger.removeHandler(h)
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    handler._retail_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
