"""tests/support/polling.py: wait_until returns the first truthy value or fails naming what it waited for."""

from __future__ import annotations

import pytest

from tests.support.polling import wait_until


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_truthy_value_without_sleeping_once_it_holds() -> None:
    clock = FakeClock()
    values = iter([None, 0, [], "ready"])
    assert wait_until(lambda: next(values), timeout=1, interval=0.1, what="x", clock=clock,
                      sleep=clock.sleep) == "ready"
    assert clock.sleeps == [0.1, 0.1, 0.1]


def test_times_out_naming_what_it_waited_for_and_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(AssertionError, match=r"timed out after 0.25 s waiting for the server to listen "
                                             r"\(last value: False\)"):
        wait_until(lambda: False, timeout=0.25, interval=0.1, what="the server to listen", clock=clock,
                   sleep=clock.sleep)
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.05])


def test_an_error_of_the_predicate_is_not_waited_out() -> None:
    clock = FakeClock()

    def broken() -> bool:
        raise ProcessLookupError("gone")

    with pytest.raises(ProcessLookupError):
        wait_until(broken, timeout=5, what="x", clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_non_positive_timeouts_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        wait_until(lambda: True, timeout=0, what="x")
