"""Translate azureml SDK errors into the product's errors, at the adapter's edge."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from shared.errors import (
    Conflict,
    InvalidValue,
    ManyModelsError,
    NotFound,
    OperationTimeout,
    Unavailable,
)

# Words the SDK puts in messages whose exception class alone does not tell what happened
# (WebserviceException and UserErrorException are raised for "not found" and "bad value" alike).
_NOT_FOUND = ("not found", "notfound", "no such", "does not exist", "could not find", "cannot find", "404")
_CONFLICT = ("already exists", "conflict", "409", "etag")
_TIMEOUT = ("timed out", "timeout")


def translate(error: Exception, action: str) -> ManyModelsError:
    """The product error for an SDK error raised while doing ``action`` ("get model lr_x:3")."""
    if isinstance(error, ManyModelsError):
        return error
    text = str(error)
    lowered = text.lower()
    message = f"Azure ML could not {action}: {text.strip() or type(error).__name__}"
    if isinstance(error, TimeoutError) or any(w in lowered for w in _TIMEOUT):
        return OperationTimeout(message)
    if isinstance(error, KeyError) or any(w in lowered for w in _NOT_FOUND):
        return NotFound(message)
    if any(w in lowered for w in _CONFLICT):
        return Conflict(message)
    if isinstance(error, (ConnectionError, OSError)):
        return Unavailable(message)
    if isinstance(error, ValueError) or type(error).__name__ in ("UserErrorException", "ValidationException"):
        return InvalidValue(message)
    return Unavailable(message)


@contextlib.contextmanager
def sdk_call(action: str) -> Iterator[None]:
    """``with sdk_call("register dataset train"):`` - any SDK error leaves as a product error."""
    try:
        yield
    except ManyModelsError:
        raise
    except Exception as e:
        raise translate(e, action) from e
