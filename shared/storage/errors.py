"""Storage SDK errors -> the product's errors, by HTTP status, at the edge.

``azure-core`` raises :class:`~azure.core.exceptions.HttpResponseError` (with ``status_code`` and
the service's ``error_code``) for every answer that is not a success, and
:class:`~azure.core.exceptions.ServiceRequestError` / ``ServiceResponseError`` when there is no
answer at all. The status says what happened, and so (through :attr:`shared.errors.ErrorCode.retryable`)
whether a retry can help: 403 is a missing role (no), 503 is throttling (yes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.errors import (
    AlreadyExists,
    Conflict,
    InvalidValue,
    ManyModelsError,
    NotFound,
    OperationTimeout,
    PermissionDenied,
    Unavailable,
)

_BY_STATUS: dict[int, type[ManyModelsError]] = {
    400: InvalidValue,
    401: PermissionDenied,
    403: PermissionDenied,
    404: NotFound,
    408: OperationTimeout,
    409: Conflict,
    412: Conflict,  # an ETag condition failed: someone else wrote first
    429: Unavailable,
    504: OperationTimeout,
}
# what to do about it, per product error type (the storage message says which resource)
_HINT: dict[type[ManyModelsError], str] = {
    PermissionDenied: "the identity in use needs a data role on the account (e.g. Storage Blob Data Contributor)",
    Unavailable: "storage is busy or down; the operation can be retried",
    OperationTimeout: "storage did not answer in time; the operation can be retried",
}


def error_type_for_status(status: int, error_code: str = "") -> type[ManyModelsError]:
    """The product error type for an Azure service's HTTP answer ``status`` (0 when unknown) and its
    ``error_code``; shared by every adapter that sees azure-core errors (shared/workspace/amlv2/sdk_errors.py)."""
    kind = _BY_STATUS.get(status) or (Unavailable if status >= 500 or not status else InvalidValue)
    if kind is Conflict and str(error_code or "").endswith("AlreadyExists"):
        kind = AlreadyExists
    return kind


def storage_error(error: Exception, action: str) -> ManyModelsError:
    """The product error for a storage SDK error raised while doing ``action`` ("create container x")."""
    if isinstance(error, ManyModelsError):
        return error
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return Unavailable(f"could not {action}: storage is not reachable ({error}); locally, is Azurite "
                           "running? Start it with `manymodels storage start`")
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        kind = error_type_for_status(status, str(getattr(error, "error_code", "") or ""))
        code = getattr(error, "error_code", None) or getattr(error, "reason", None) or ""
        hint = _HINT.get(kind)
        return kind(f"could not {action}: storage answered {status} {code}".rstrip()
                    + (f" - {hint}" if hint else "") + f" ({_first_line(error)})")
    if isinstance(error, AzureError):
        return Unavailable(f"could not {action}: {_first_line(error)}")
    return ManyModelsError(f"could not {action}: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    # HttpResponseError's str() carries the whole response body after the first line
    return (str(getattr(error, "message", None) or error).strip().splitlines() or [type(error).__name__])[0]


@contextlib.contextmanager
def storage_call(action: str) -> Iterator[None]:
    """``with storage_call("upload x"):`` - a storage SDK error leaves as a product error."""
    try:
        yield
    except ManyModelsError:
        raise
    except AzureError as e:
        raise storage_error(e, action) from e
