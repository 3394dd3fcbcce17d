"""Storage errors translated by HTTP status (shared/storage/errors.py), and whether a retry can help
as one property of the error code (shared/errors.py), which every flow uses."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.errors import (
    HTTP_STATUS,
    AlreadyExists,
    BadData,
    Conflict,
    ErrorCode,
    InvalidValue,
    ManyModelsError,
    NotFound,
    OperationTimeout,
    PermissionDenied,
    Unavailable,
)
from shared.storage.errors import storage_call, storage_error


def _http(status: int, error_code: str = "", cls: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    error = cls(message=f"{error_code or 'Error'}: the service said no\nRequestId:1\nTime:now")
    error.status_code, error.error_code = status, error_code
    return error


@pytest.mark.parametrize(("status", "error_code", "expected"), [
    (400, "InvalidResourceName", InvalidValue),
    (401, "NoAuthenticationInformation", PermissionDenied),
    (403, "AuthorizationPermissionMismatch", PermissionDenied),
    (404, "BlobNotFound", NotFound),
    (408, "OperationTimedOut", OperationTimeout),
    (409, "LeaseAlreadyPresent", Conflict),
    (409, "ContainerAlreadyExists", AlreadyExists),
    (412, "ConditionNotMet", Conflict),
    (429, "TooManyRequests", Unavailable),
    (500, "InternalError", Unavailable),
    (503, "ServerBusy", Unavailable),
    (504, "GatewayTimeout", OperationTimeout),
])
def test_http_errors_are_translated_by_status(status, error_code, expected):
    translated = storage_error(_http(status, error_code), "create container landing")
    assert type(translated) is expected
    assert f"could not create container landing: storage answered {status} {error_code}" in translated.message
    assert "RequestId" not in translated.message  # the first line only


def test_no_answer_is_unavailable_and_the_sdk_subclasses_keep_their_status():
    for error in (ServiceRequestError("connection refused"), ServiceResponseError("connection reset")):
        assert isinstance(storage_error(error, "list landing/"), Unavailable)
    assert isinstance(storage_error(_http(404, "BlobNotFound", ResourceNotFoundError), "download x"), NotFound)
    assert isinstance(storage_error(_http(409, "BlobAlreadyExists", ResourceExistsError), "upload x"), AlreadyExists)
    with pytest.raises(PermissionDenied) as raised, storage_call("upload landing/x.csv"):
        raise _http(403, "AuthorizationPermissionMismatch")
    assert isinstance(raised.value.__cause__, HttpResponseError) and "Storage Blob Data" in raised.value.message


@pytest.mark.parametrize(("error", "retryable"), [
    (Unavailable("throttled"), True),
    (OperationTimeout("slow"), True),
    (Conflict("etag"), True),
    (ManyModelsError("unexpected"), True),
    (InvalidValue("bad"), False),
    (BadData("bad"), False),
    (NotFound("gone"), False),
    (AlreadyExists("there"), False),
    (PermissionDenied("no role"), False),
])
def test_retryable_is_a_property_of_the_code(error, retryable):
    assert error.retryable is retryable is error.code.retryable
    assert ManyModelsError("x", code=error.code).retryable is retryable


def test_every_code_has_an_http_status_and_permission_denied_is_the_servers_fault():
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert PermissionDenied("x").http_status == 500  # the app's identity lacks a role, not the caller
