"""Wire types of the REST API v1 as TypedDicts, named as internal/api/openapi.json's
schemas (tests/test_openapi.py checks their keys against the document)."""

from __future__ import annotations

from typing import Any, TypedDict


class VM(TypedDict, total=False):
    """A sandbox."""
    id: str
    project_id: str
    name: str
    status: str
    runtime: str
    runtime_id: str
    ip_address: str
    worker_id: str
    image: str
    vcpus: int
    memory_mb: int
    additional_tools: list[str]
    tool_versions: dict[str, str]
    error: str
    created_at: str
    updated_at: str
    template: str
    tools_installed: dict[str, str]
    expires_at: str
    idle_timeout_seconds: int
    last_active_at: str
    on_expire: str
    egress: str


class Accepted(TypedDict, total=False):
    """A queued request's answer: the task to wait for."""
    task_id: str
    vm_id: str
    job_id: str
    status: str


class Task(TypedDict, total=False):
    """A unit of asynchronous work."""
    id: str
    project_id: str
    type: str
    status: str
    priority: str
    vm_id: str
    payload: dict[str, Any]
    result: dict[str, Any]
    progress: str
    error: str
    retry_count: int
    max_retries: int
    worker_id: str
    created_at: str
    updated_at: str
    started_at: str
    completed_at: str


class Execution(TypedDict, total=False):
    """A command's record."""
    id: str
    project_id: str
    vm_id: str
    task_id: str
    job_id: str
    command: str
    args: list[str]
    shell: bool  # True: ran as a /bin/sh -c line; False: as the program; absent: unknown (older records)
    exit_code: int | None
    signal: str
    timed_out: bool
    error: str
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    started_at: str
    completed_at: str
    duration_ms: int


class Job(TypedDict, total=False):
    """Commands run in order in one sandbox."""
    id: str
    project_id: str
    vm_id: str
    task_id: str
    status: str
    commands: list[str]
    error: str
    created_at: str
    started_at: str
    completed_at: str


class Template(TypedDict, total=False):
    """A prepared image."""
    id: str
    project_id: str
    name: str
    status: str
    spec: dict[str, Any]
    spec_hash: str
    image: str
    tools_installed: dict[str, str]
    worker_id: str
    task_id: str
    error: str
    created_at: str
    updated_at: str
    pool_size: int


class Event(TypedDict, total=False):
    """A task or sandbox state change (streamEvents)."""
    kind: str
    status: str
    task_type: str
    task_id: str
    vm_id: str
    project_id: str
    error: str
    progress: str
    time: str


class Project(TypedDict, total=False):
    """A tenant."""
    id: str
    name: str
    quota: Quota
    created_at: str


class Quota(TypedDict, total=False):
    """A project's limits; 0 means none."""
    sandboxes: int
    vcpus: int
    memory_mb: int
    templates: int
    pool_size: int
    execs: int


class LogRecord(TypedDict, total=False):
    """One log line with its labels."""
    id: int
    time: str
    project: str
    vm_id: str
    task_id: str
    execution_id: str
    stream: str
    level: str
    line: str
    truncated: bool


class LogPage(TypedDict, total=False):
    """One page of log records."""
    records: list[LogRecord]
    next: str
