"""Host logging: readable lines by default, one JSON object per line with ``--json-logs``."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

# fields the host adds to its records (see invoke._log and the trigger listeners)
_EXTRA_FIELDS = ("function", "trigger", "invocation_id", "duration_ms", "outcome", "error", "attempt",
                 "subscription", "event_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                body[name] = getattr(record, name)
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure(*, json_logs: bool = False, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Route every log record (host and functions) to ``stream`` in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # the SDKs log every HTTP request at INFO: noise, and their URLs may carry SAS tokens
    for noisy in ("azure", "urllib3", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
