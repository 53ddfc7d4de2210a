"""Aetherium's Python SDK: sandboxes, streaming exec, files, templates and
events over the REST API v1. Standard library only; Python 3.11+.

    from aetherium import Sandbox

    with Sandbox.create() as sb:
        print(sb.exec("echo hello").stdout)

Client and Sandbox are safe for use from several threads.
"""

from .client import NOT_COVERED, OPERATIONS, Client, EventStream, discover_key, __version__
from .errors import (
    AetheriumError,
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    ForbiddenError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    ServerTimeoutError,
    TaskFailedError,
    TooLargeError,
    TransportError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    WrongHostError,
    error_for,
)
from .exec import ExecEvent, ExecResult, ExecStream
from .sandbox import Files, Sandbox
from .types import VM, Accepted, Event, Execution, Job, LogPage, LogRecord, Project, Quota, Task, Template

__all__ = [
    "AetheriumError", "AlreadyExistsError", "Client", "ConflictError", "EventStream", "ExecEvent", "ExecResult",
    "ExecStream", "FailedPreconditionError", "Files", "ForbiddenError", "InternalError", "InvalidArgumentError",
    "NOT_COVERED", "NotFoundError", "OPERATIONS", "QuotaExceededError", "RateLimitedError", "Sandbox",
    "ServerTimeoutError", "TaskFailedError", "TooLargeError", "TransportError", "UnauthenticatedError",
    "UnavailableError", "UnimplementedError", "UnprocessableError", "UnsupportedMediaTypeError", "WrongHostError",
    "__version__", "discover_key", "error_for",
    "VM", "Accepted", "Event", "Execution", "Job", "LogPage", "LogRecord", "Project", "Quota", "Task", "Template",
]
