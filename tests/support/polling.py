"""Waiting in tests for something another process or thread does, without fixed sleeps.

A test that needs a server to listen, a process to exit or a thread to queue work asks
:func:`wait_until` with the condition: it returns as soon as the condition holds and fails with an
AssertionError naming what it waited for when ``timeout`` passes. A quiet period or a timeout of
the product itself is not waited for: the test injects the product's clock (``now=``/``clock=``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.02, what: str,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> T:
    """The first truthy value of ``predicate()``, polled every ``interval`` seconds.

    An exception from ``predicate`` propagates (a condition that cannot be checked is a failure, not
    a reason to wait). ``clock``/``sleep`` are the monotonic clock and its sleep, replaced only by this
    module's own tests.

    Raises:
        AssertionError: ``predicate()`` was still falsy after ``timeout`` seconds; names ``what`` and the
            last value seen.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout {timeout!r} and interval {interval!r} must be positive seconds")
    deadline = clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - clock()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last value: {value!r})")
        sleep(min(interval, left))
