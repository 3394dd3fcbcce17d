"""How commands print: human text on a terminal, one JSON object as the last line with --json."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON line (the last line scripts read)."""
    print(json.dumps(obj, default=str, separators=(", ", ": ")), flush=True)


def info(message: str) -> None:
    """Progress for people: to stderr, so stdout stays parseable with --json."""
    print(message, file=sys.stderr, flush=True)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table."""
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
