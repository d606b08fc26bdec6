"""Structured logs: one JSON object per line, each tagged with the job it belongs to.

The job manager sets `current_job_id` in each job's task; every log line written from that
task (and from the tasks it starts) carries the id, so `grep '"job_id": 42'` finds a job's
whole story across its locks, AWS calls and chat posts.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from bot.redaction import redact_log_text

current_job_id: ContextVar[int | None] = ContextVar("kajitori_job_id", default=None)

# LogRecord attributes that are not `extra=` fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "job_id", "taskName"}
)


class JobIdFilter(logging.Filter):
    """Reads the job id where the line is logged (a formatter may run elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = current_job_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            entry["job_id"] = job_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _redacted(value)
        # The record was redacted as it was made, its exception text included; `extra=` fields
        # were added after, so they are redacted here.
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = redact_log_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact_log_text(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_log_text(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = json.dumps(value, default=str, ensure_ascii=False)
    return value if redact_log_text(text) == text else redact_log_text(str(value))


def json_handler(stream: IO[str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JobIdFilter())
    return handler
