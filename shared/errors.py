"""One exception hierarchy for the whole product.

Every error carries an :class:`ErrorCode`; ``HTTP_STATUS`` maps codes to the status an HTTP
function answers with, and :attr:`ErrorCode.retryable` says whether doing the same thing again
later can succeed (every flow decides retry-or-give-up from it, never case by case). Adapters
translate their backend's errors at the edge (``raise NotFound(...) from e``; storage by HTTP
status in shared/storage/errors.py), so flows and triggers only ever see these types.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_VALUE = "INVALID_VALUE"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    BAD_DATA = "BAD_DATA"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAVAILABLE = "UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    INTERNAL = "INTERNAL"

    @property
    def retryable(self) -> bool:
        """True when the same call may succeed later (a dependency down or throttling, a timeout,
        a concurrent writer, an unexpected failure); False when only a change of input or of
        configuration can fix it, so a retry would fail the same way."""
        return self not in _PERMANENT


# Codes a retry cannot fix. PERMISSION_DENIED needs a role assignment (an operator's change).
_PERMANENT = frozenset({ErrorCode.INVALID_VALUE, ErrorCode.NOT_FOUND, ErrorCode.ALREADY_EXISTS, ErrorCode.BAD_DATA,
                        ErrorCode.PERMISSION_DENIED})


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_VALUE: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.BAD_DATA: 422,
    # the app's own identity lacks a role: a server-side configuration fault, not the caller's
    ErrorCode.PERMISSION_DENIED: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}


class ManyModelsError(Exception):
    """Base error: a readable message saying what was wrong and what to do about it."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def retryable(self) -> bool:
        return self.code.retryable

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "code": str(self.code)}


class SettingsError(ManyModelsError):
    """An environment variable or settings file holds a value that is not allowed."""

    code = ErrorCode.INVALID_VALUE


class InvalidValue(ManyModelsError):
    """A request, argument or file field has a value that is not allowed."""

    code = ErrorCode.INVALID_VALUE


class NotFound(ManyModelsError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(ManyModelsError):
    code = ErrorCode.ALREADY_EXISTS


class Conflict(ManyModelsError):
    """A concurrent writer got there first (ETag mismatch, lock held, state changed)."""

    code = ErrorCode.CONFLICT


class BadData(ManyModelsError):
    """Input data does not match the dataset schema."""

    code = ErrorCode.BAD_DATA


class PermissionDenied(ManyModelsError):
    """The product's identity is not allowed to do something (a missing role assignment)."""

    code = ErrorCode.PERMISSION_DENIED


class Unavailable(ManyModelsError):
    """A service the product needs (storage, a scoring service, Azure ML) cannot be reached."""

    code = ErrorCode.UNAVAILABLE


class OperationTimeout(ManyModelsError):
    code = ErrorCode.TIMEOUT
