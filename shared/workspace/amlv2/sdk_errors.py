"""Translate azure-ai-ml (SDK v2) errors into the product's errors, at the adapter's edge.

SDK v2 raises azure-core's typed errors for service answers (``ResourceNotFoundError``,
``ResourceExistsError``, ``ClientAuthenticationError``, and ``HttpResponseError`` with a status
for the rest) and its own ``MlException`` family (``ValidationException``, ``UserErrorException``)
for input it refuses before calling the service. Service answers are mapped by HTTP status with
the rule shared with storage (shared/storage/errors.py ``error_type_for_status``), so 429 and 5xx
are retryable and 403 is a missing role everywhere in the product.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.ai.ml.exceptions import ErrorCategory, MlException
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

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
from shared.storage.errors import error_type_for_status

# what to do about it, per product error type (the SDK's text says which resource)
_HINT: dict[type[ManyModelsError], str] = {
    PermissionDenied: "the identity in use (DefaultAzureCredential: the Function App's managed identity on Azure, "
                      "`az login` elsewhere) needs a role on the workspace, e.g. AzureML Data Scientist",
    Unavailable: "Azure ML is busy or cannot be reached; the operation can be retried",
    OperationTimeout: "Azure ML did not answer in time; the operation can be retried",
}


def _text(error: BaseException) -> str:
    # HttpResponseError's str() carries the whole response body after the first line
    text = str(getattr(error, "message", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0]


def _kind(error: BaseException) -> type[ManyModelsError]:
    # order matters: the azure-core types below are all HttpResponseError subclasses
    if isinstance(error, ResourceNotFoundError):
        return NotFound
    if isinstance(error, ResourceExistsError):
        return AlreadyExists
    if isinstance(error, ResourceModifiedError):
        return Conflict  # an ETag condition failed: someone else wrote first
    if isinstance(error, ClientAuthenticationError):
        return PermissionDenied
    if isinstance(error, HttpResponseError):
        return error_type_for_status(error.status_code or 0, str(getattr(error, "error_code", "") or ""))
    if isinstance(error, (ServiceRequestTimeoutError, ServiceResponseTimeoutError, TimeoutError)):
        return OperationTimeout
    if isinstance(error, (ServiceRequestError, ServiceResponseError, ConnectionError)):
        return Unavailable
    if isinstance(error, MlException):
        # ValidationException, UserErrorException and the asset/job exceptions raised for bad input
        category = getattr(error, "error_category", ErrorCategory.USER_ERROR)
        return InvalidValue if category == ErrorCategory.USER_ERROR else Unavailable
    return Unavailable


def translate(error: BaseException, action: str) -> ManyModelsError:
    """The product error for an SDK error raised while doing ``action`` ("get model lr_x:3")."""
    if isinstance(error, ManyModelsError):
        return error
    kind = _kind(error)
    status = getattr(error, "status_code", None)
    answered = f" (Azure ML answered {status})" if isinstance(error, HttpResponseError) and status else ""
    hint = _HINT.get(kind)
    return kind(f"Azure ML could not {action}: {_text(error)}{answered}" + (f" - {hint}" if hint else ""))


@contextlib.contextmanager
def sdk_call(action: str) -> Iterator[None]:
    """``with sdk_call("register dataset train"):`` - an SDK error leaves as a product error.

    Only the SDK's and the network's errors are translated; anything else is a bug and keeps
    its traceback."""
    try:
        yield
    except ManyModelsError:
        raise
    except (AzureError, TimeoutError, ConnectionError) as e:
        raise translate(e, action) from e
