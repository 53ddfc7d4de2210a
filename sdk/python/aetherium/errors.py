"""Typed errors: one class per API error code (internal/api/errors.go)."""

from __future__ import annotations

from typing import Any


class AetheriumError(Exception):
    """Base of every error this SDK raises.

    status is the HTTP status (0 when the server was not reached, 200 for an
    error event inside a streamed exec), code the API's error code
    ("not_found", "invalid_argument", ...), message its one-line text.
    """

    def __init__(self, message: str, *, status: int = 0, code: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class TransportError(AetheriumError):
    """The server could not be reached, or a stream broke mid-way."""


class UnauthenticatedError(AetheriumError):
    """401: no API key, or a wrong, revoked or expired one."""


class ForbiddenError(AetheriumError):
    """403: the key's role may not do this."""


class NotFoundError(AetheriumError):
    """404: no such object in the caller's project."""


class InvalidArgumentError(AetheriumError):
    """400: the request was malformed or a field was invalid."""


class ConflictError(AetheriumError):
    """409: the object's state does not allow the request."""


class AlreadyExistsError(ConflictError):
    """409: an object with that name exists."""


class FailedPreconditionError(ConflictError):
    """409: the object is not in the state the request needs."""


class QuotaExceededError(AetheriumError):
    """429: the project's quota is used up (retrying will not help)."""


class RateLimitedError(AetheriumError):
    """429: the key's rate limit; retry_after says when to try again."""


class TooLargeError(AetheriumError):
    """413: the request body was too large."""


class UnsupportedMediaTypeError(AetheriumError):
    """415: wrong Content-Type."""


class UnprocessableError(AetheriumError):
    """422: well-formed but impossible (an unknown tool version, ...)."""


class WrongHostError(AetheriumError):
    """421: the Host header is not one the server answers."""


class UnavailableError(AetheriumError):
    """503: the server or a part it needs is unavailable; retry later."""


class UnimplementedError(AetheriumError):
    """501: the server's runtime does not support this."""


class ServerTimeoutError(AetheriumError):
    """504: the server gave up waiting."""


class InternalError(AetheriumError):
    """500: the server failed; its log says why."""


class TaskFailedError(AetheriumError):
    """An asynchronous task (create, delete, build...) ended failed; task holds it."""

    def __init__(self, task: dict[str, Any]):
        super().__init__(f"task {task.get('id')} ({task.get('type')}) failed: {task.get('error') or 'no reason given'}",
                         code="task_failed")
        self.task = task


_BY_CODE: dict[str, type[AetheriumError]] = {
    "unauthenticated": UnauthenticatedError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "invalid_argument": InvalidArgumentError,
    "conflict": ConflictError,
    "already_exists": AlreadyExistsError,
    "failed_precondition": FailedPreconditionError,
    "quota_exceeded": QuotaExceededError,
    "rate_limited": RateLimitedError,
    "too_large": TooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "unprocessable": UnprocessableError,
    "wrong_host": WrongHostError,
    "unavailable": UnavailableError,
    "not_implemented": UnimplementedError,
    "timeout": ServerTimeoutError,
    "internal": InternalError,
}

_BY_STATUS: dict[int, type[AetheriumError]] = {
    400: InvalidArgumentError, 401: UnauthenticatedError, 403: ForbiddenError, 404: NotFoundError,
    409: ConflictError, 413: TooLargeError, 415: UnsupportedMediaTypeError, 421: WrongHostError,
    422: UnprocessableError, 429: RateLimitedError, 500: InternalError, 501: UnimplementedError,
    503: UnavailableError, 504: ServerTimeoutError,
}


def error_for(status: int, code: str, message: str, retry_after: float | None = None) -> AetheriumError:
    """The typed error for an API error: by its code, else by its status."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or AetheriumError
    return cls(message, status=status, code=code, retry_after=retry_after)
