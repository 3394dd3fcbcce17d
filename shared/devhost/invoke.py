"""Call one function like the Python worker: arguments by parameter name, one log line per invocation.

The trigger's value goes to the parameter named like the trigger binding, ``context`` gets a
``func.Context``, ``func.Out`` parameters get a holder. Async functions run to completion on the
invoking thread. An exception is the function failing (the Functions host answers 500, Event Grid
and queues retry); it is logged with its traceback, never raised to the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.devhost.functions import FunctionSpec

log = logging.getLogger("manymodels.devhost.invocations")


class Outcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class Invocation:
    function: str
    invocation_id: str
    outcome: Outcome
    duration_ms: float
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCEEDED


class _TraceContext:
    trace_parent = ""
    trace_state = ""
    attributes: dict[str, str] = {}


class _RetryContext:
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self.retry_count = retry_count
        self.max_retry_count = max_retry_count
        self.exception = None


class InvocationContext:
    """What ``context: func.Context`` holds for a function invocation."""

    def __init__(self, spec: FunctionSpec, invocation_id: str, *, retry_count: int = 0, max_retry_count: int = 0):
        self.invocation_id = invocation_id
        self.function_name = spec.name
        self.function_directory = spec.directory
        self.trace_context = _TraceContext()
        self.retry_context = _RetryContext(retry_count, max_retry_count)
        self.thread_local_storage = threading.local()


class _Out:
    """``func.Out[T]``: output bindings other than ``$return`` are accepted and ignored locally."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, value: Any) -> None:
        self._value = value

    def get(self) -> Any:
        return self._value


def invoke(spec: FunctionSpec, trigger_value: Any, *, attempt: int = 1, max_attempts: int = 1) -> Invocation:
    """Run ``spec`` once with ``trigger_value``; log and return the outcome."""
    invocation_id = str(uuid.uuid4())
    kwargs: dict[str, Any] = {}
    for name in spec.parameters:
        if name == spec.trigger_param:
            kwargs[name] = trigger_value
        elif name == "context":
            kwargs[name] = InvocationContext(spec, invocation_id, retry_count=attempt - 1,
                                             max_retry_count=max_attempts - 1)
        else:
            kwargs[name] = _Out()
    started = time.perf_counter()
    try:
        value = spec.call(**kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
    except Exception as e:  # a failing function is an outcome, never a host crash
        duration = (time.perf_counter() - started) * 1000
        result = Invocation(spec.name, invocation_id, Outcome.FAILED, duration, error=f"{type(e).__name__}: {e}")
        _log(spec, result, exc_info=True)
        return result
    duration = (time.perf_counter() - started) * 1000
    result = Invocation(spec.name, invocation_id, Outcome.SUCCEEDED, duration, value=value)
    _log(spec, result)
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _log(spec: FunctionSpec, result: Invocation, *, exc_info: bool = False) -> None:
    extra = {"function": spec.name, "trigger": str(spec.kind), "invocation_id": result.invocation_id,
             "duration_ms": round(result.duration_ms, 1), "outcome": str(result.outcome)}
    if result.ok:
        log.info("Executed %s [%s] %s in %.0f ms (id %s)", spec.name, spec.kind, result.outcome,
                 result.duration_ms, result.invocation_id, extra=extra)
    else:
        extra["error"] = result.error
        log.warning("Executed %s [%s] %s in %.0f ms (id %s): %s", spec.name, spec.kind, result.outcome,
                    result.duration_ms, result.invocation_id, result.error, extra=extra, exc_info=exc_info)
