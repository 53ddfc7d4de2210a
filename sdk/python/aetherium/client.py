"""Client: one method per API operation (internal/api/openapi.json)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ._http import Response, Transport, seg
from .errors import AetheriumError, TaskFailedError, TransportError, error_for
from .exec import MAX_EVENT_LINE, ExecResult, ExecStream, Stdin, exec_request
from .types import VM, Event, Execution, LogPage, Project, Task, Template

__version__ = "0.1.0"

DEFAULT_URL = "http://127.0.0.1:8080"

# OPERATIONS maps each operationId of the OpenAPI document to its method and
# path; tests/test_openapi.py checks it against internal/api/openapi.json both
# ways, so an operation added to the API fails the SDK's tests until it is
# here. Each client method names its operation.
OPERATIONS: dict[str, tuple[str, str]] = {
    "getHealth": ("GET", "/health"),
    "getMetrics": ("GET", "/metrics"),
    "getOpenAPI": ("GET", "/api/v1/openapi.json"),
    "createSandbox": ("POST", "/api/v1/vms"),
    "listSandboxes": ("GET", "/api/v1/vms"),
    "getSandbox": ("GET", "/api/v1/vms/{id}"),
    "deleteSandbox": ("DELETE", "/api/v1/vms/{id}"),
    "submitExecute": ("POST", "/api/v1/vms/{id}/execute"),
    "exec": ("POST", "/api/v1/vms/{id}/exec"),
    "listExecutions": ("GET", "/api/v1/vms/{id}/executions"),
    "setSandboxTimeout": ("POST", "/api/v1/vms/{id}/timeout"),
    "pauseSandbox": ("POST", "/api/v1/vms/{id}/pause"),
    "resumeSandbox": ("POST", "/api/v1/vms/{id}/resume"),
    "snapshotSandbox": ("POST", "/api/v1/vms/{id}/snapshot"),
    "createSandboxPullRequest": ("POST", "/api/v1/vms/{id}/pull-request"),
    "writeFile": ("PUT", "/api/v1/vms/{id}/files"),
    "readFile": ("GET", "/api/v1/vms/{id}/files"),
    "getConsole": ("GET", "/api/v1/vms/{id}/console"),
    "createPreview": ("POST", "/api/v1/vms/{id}/previews"),
    "listPreviews": ("GET", "/api/v1/vms/{id}/previews"),
    "revokePreview": ("DELETE", "/api/v1/vms/{id}/previews/{token}"),
    "listTasks": ("GET", "/api/v1/tasks"),
    "getTask": ("GET", "/api/v1/tasks/{id}"),
    "createJob": ("POST", "/api/v1/jobs"),
    "getJob": ("GET", "/api/v1/jobs/{id}"),
    "streamEvents": ("GET", "/api/v1/events"),
    "createTemplate": ("POST", "/api/v1/templates"),
    "listTemplates": ("GET", "/api/v1/templates"),
    "getTemplate": ("GET", "/api/v1/templates/{name}"),
    "deleteTemplate": ("DELETE", "/api/v1/templates/{name}"),
    "setTemplatePool": ("POST", "/api/v1/templates/{name}/pool"),
    "buildImage": ("POST", "/api/v1/images"),
    "createProject": ("POST", "/api/v1/projects"),
    "listProjects": ("GET", "/api/v1/projects"),
    "getProject": ("GET", "/api/v1/projects/{id}"),
    "setProjectQuota": ("PUT", "/api/v1/projects/{id}/quota"),
    "deleteProject": ("DELETE", "/api/v1/projects/{id}"),
    "createKey": ("POST", "/api/v1/keys"),
    "listKeys": ("GET", "/api/v1/keys"),
    "revokeKey": ("DELETE", "/api/v1/keys/{id}"),
    "listAudit": ("GET", "/api/v1/audit"),
    "listWorkers": ("GET", "/api/v1/workers"),
    "queryLogs": ("POST", "/api/v1/logs/query"),
    "listProcesses": ("GET", "/api/v1/vms/{id}/processes"),
    "signalProcess": ("POST", "/api/v1/vms/{id}/processes/{pid}/signal"),
    "processOutput": ("GET", "/api/v1/vms/{id}/processes/{pid}/output"),
    "listDirectory": ("GET", "/api/v1/vms/{id}/files/list"),
    "watchDirectory": ("GET", "/api/v1/vms/{id}/files/watch"),
}

# NOT_COVERED are operations this SDK leaves out, with why.
NOT_COVERED = {
    "streamLogs": "a WebSocket; Python's standard library has no WebSocket client",
    "openPty": "a WebSocket terminal; Python's standard library has no WebSocket client",
    "openTcp": "a WebSocket carrying raw TCP; Python's standard library has no WebSocket client",
    "proxyPortGet": "the sandbox's own HTTP service: call its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
    "proxyPortPost": "the sandbox's own HTTP service: call its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
    "proxyPortPut": "the sandbox's own HTTP service: call its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
    "proxyPortPatch": "the sandbox's own HTTP service: call its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
    "proxyPortDelete": "the sandbox's own HTTP service: call its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
    "receiveWebhook": "called by GitHub and Slack with their signatures, not by API clients",
    "getDashboard": "the web dashboard, for browsers",
    "getDashboardAsset": "the web dashboard, for browsers",
    "createSession": "the dashboard's cookie session, for browsers (the SDK sends its key)",
    "getSession": "the dashboard's cookie session, for browsers",
    "deleteSession": "the dashboard's cookie session, for browsers",
}

# MAX_SSE_LINE bounds one line of the event stream.
MAX_SSE_LINE = 1 << 20


def discover_key() -> str:
    """The key a local client sends, as the aether CLI finds it:
    AETHER_API_KEY, else the bootstrap key file $AETHER_DATA_DIR/admin.key,
    else ./aether-data/admin.key; "" when there is none."""
    if k := os.environ.get("AETHER_API_KEY", "").strip():
        return k
    path = Path(os.environ.get("AETHER_DATA_DIR") or "aether-data") / "admin.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


class Client:
    """A client of one aetherd. Safe for use from several threads.

    base_url defaults to AETHER_URL, else AETHER_SERVER (the CLI's), else
    http://127.0.0.1:8080; api_key to discover_key(). project names the
    project an admin key acts in (X-Aether-Project). timeout bounds each
    plain request in seconds (execs and event streams have none of their
    own). max_retries bounds the retries of a rate-limited request and of
    GET/DELETE requests meeting a 503 or a connection failure.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, project: str | None = None,
                 timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.2):
        base = base_url or os.environ.get("AETHER_URL") or os.environ.get("AETHER_SERVER") or DEFAULT_URL
        key = api_key if api_key is not None else discover_key()
        self._t = Transport(base, key, project, timeout, max_retries, backoff, f"aetherium-python/{__version__}")

    @property
    def retries(self) -> int:
        """How many requests this client has sent again (rate limits, 503s)."""
        return self._t.retries

    def close(self) -> None:
        """Closes idle connections; the client stays usable."""
        self._t.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- plumbing

    def _call(self, op: str, *, params: dict[str, str] | None = None, query: dict[str, Any] | None = None,
              body: Any = None, raw: bytes | None = None, content_type: str | None = None,
              timeout: float | None | str = "default") -> Response:
        method, path = OPERATIONS[op]
        for k, v in (params or {}).items():
            path = path.replace("{" + k + "}", seg(v))
        data = raw
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        elif method in ("POST", "PUT") and raw is None:
            data, content_type = b"{}", "application/json"
        return self._t.request(method, path, query=query, body=data, content_type=content_type, timeout=timeout)

    def _json(self, op: str, **kw: Any) -> Any:
        with self._call(op, **kw) as resp:
            return resp.json()

    def _pages(self, op: str, field: str, params: dict[str, str] | None = None,
               query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self._json(op, params=params, query={**(query or {}), "limit": 1000, "cursor": cursor})
            items += page.get(field) or []
            if not (cursor := page.get("next") or ""):
                return items

    # --- server

    def health(self) -> dict[str, Any]:
        """getHealth: the server's health report (503 raises UnavailableError)."""
        return self._json("getHealth")

    def metrics(self) -> str:
        """getMetrics: Prometheus text (admin key)."""
        with self._call("getMetrics") as r:
            return r.read().decode()

    def openapi(self) -> dict[str, Any]:
        """getOpenAPI: the server's OpenAPI document."""
        return self._json("getOpenAPI")

    # --- sandboxes

    def create_sandbox(self, name: str, *, wait: bool = True, wait_timeout: float | None = 300,
                       **fields: Any) -> dict[str, Any]:
        """createSandbox. fields are the CreateVM body's (template, image,
        vcpus, memory_mb, additional_tools, tool_versions, timeout_seconds,
        idle_timeout_seconds, on_expire, egress, keep_on_failure). With wait
        it waits for the create task and returns the running sandbox (a
        failed create raises TaskFailedError); without, the Accepted body."""
        acc = self._json("createSandbox", body={"name": name, **{k: v for k, v in fields.items() if v is not None}})
        if not wait:
            return acc
        self.wait_task(acc["task_id"], timeout=wait_timeout)
        return self.get_sandbox(acc["vm_id"])

    def list_sandboxes(self, *, all: bool = False) -> list[VM]:
        """listSandboxes, every page; all includes deleted ones."""
        return self._pages("listSandboxes", "vms", query={"all": all or None})

    def get_sandbox(self, vm: str) -> VM:
        """getSandbox by ID or name."""
        return self._json("getSandbox", params={"id": vm})

    def delete_sandbox(self, vm: str, *, wait: bool = True, wait_timeout: float | None = 120) -> dict[str, Any]:
        """deleteSandbox; with wait, returns the finished delete task."""
        acc = self._json("deleteSandbox", params={"id": vm})
        return self.wait_task(acc["task_id"], timeout=wait_timeout) if wait else acc

    def set_sandbox_timeout(self, vm: str, seconds: int) -> VM:
        """setSandboxTimeout: expire seconds from now (0 never)."""
        return self._json("setSandboxTimeout", params={"id": vm}, body={"timeout_seconds": seconds})

    def pause_sandbox(self, vm: str) -> dict[str, Any]:
        """pauseSandbox (async: Accepted)."""
        return self._json("pauseSandbox", params={"id": vm})

    def resume_sandbox(self, vm: str) -> dict[str, Any]:
        """resumeSandbox (async: Accepted)."""
        return self._json("resumeSandbox", params={"id": vm})

    def snapshot_sandbox(self, vm: str, template: str) -> dict[str, Any]:
        """snapshotSandbox: save the filesystem as a new template (async)."""
        return self._json("snapshotSandbox", params={"id": vm}, body={"name": template})

    def create_pull_request(self, vm: str, repo: str, path: str, branch: str, title: str,
                            base: str = "main", body: str = "") -> dict[str, Any]:
        """createSandboxPullRequest: push the git work at path as branch, open a PR (async)."""
        return self._json("createSandboxPullRequest", params={"id": vm},
                          body={"repo": repo, "path": path, "branch": branch, "base": base, "title": title, "body": body})

    def console(self, vm: str, max_bytes: int | None = None) -> str:
        """getConsole: the end of the sandbox's console log."""
        with self._call("getConsole", params={"id": vm}, query={"max_bytes": max_bytes}) as r:
            return r.read().decode("utf-8", "replace")

    def create_preview(self, vm: str, port: int, *, ttl_seconds: int = 0) -> dict[str, Any]:
        """createPreview: a public preview token of one port; the answer's
        "url" is the preview host and "token_url" opens it in a browser
        (its "token" is the secret, shown this once)."""
        return self._json("createPreview", params={"id": vm}, body={"port": port, "ttl_seconds": ttl_seconds})

    def list_previews(self, vm: str) -> list[dict[str, Any]]:
        """listPreviews: the sandbox's preview tokens, without secrets."""
        return self._json("listPreviews", params={"id": vm}).get("previews") or []

    def revoke_preview(self, vm: str, token_id: str) -> None:
        """revokePreview."""
        self._call("revokePreview", params={"id": vm, "token": token_id}).close()

    # --- commands

    def exec_stream(self, vm: str, command: str, args: list[str] | None = None, *, env: dict[str, str] | None = None,
                    cwd: str | None = None, user: str | None = None, timeout: int | None = None,
                    stdin: Stdin = None, keep_running: bool = False, shell: bool | None = None) -> ExecStream:
        """exec: starts a command (a shell line when args is None, unless
        shell=False, which runs command as the program) and returns its
        ExecStream of events. timeout is the command's, in seconds. stdin:
        see aetherium.exec.Stdin. With keep_running the command survives the
        stream being closed (see process_output)."""
        req = exec_request(command, args, env, cwd, user, timeout, shell)
        if keep_running:
            req["keep_running"] = True
        return ExecStream(self._t, vm, req, stdin, None)

    def exec(self, vm: str, command: str, args: list[str] | None = None, *, env: dict[str, str] | None = None,
             cwd: str | None = None, user: str | None = None, timeout: int | None = None, stdin: Stdin = None,
             on_stdout: Callable[[bytes], None] | None = None, on_stderr: Callable[[bytes], None] | None = None,
             max_output: int = 16 << 20, shell: bool | None = None) -> ExecResult:
        """exec, to the end: output goes to the callbacks as it comes and is
        kept (up to max_output bytes per stream) in the result. A non-zero
        exit is a result, not an error. Interactive stdin (True) needs
        exec_stream."""
        if stdin is True:
            raise ValueError("stdin=True is for exec_stream(), which can send() to it")
        with self.exec_stream(vm, command, args, env=env, cwd=cwd, user=user, timeout=timeout, stdin=stdin,
                              shell=shell) as s:
            return s.result(on_stdout, on_stderr, max_output)

    def submit_execute(self, vm: str, command: str, args: list[str] | None = None, **kw: Any) -> dict[str, Any]:
        """submitExecute: queue a command (async); its task's result holds the output."""
        return self._json("submitExecute", params={"id": vm},
                          body=exec_request(command, args, kw.get("env"), kw.get("cwd"), kw.get("user"),
                                            kw.get("timeout"), kw.get("shell")))

    def list_executions(self, vm: str) -> list[Execution]:
        """listExecutions, every page, oldest first."""
        return self._pages("listExecutions", "executions", params={"id": vm})

    def create_job(self, vm: str, commands: list[str]) -> dict[str, Any]:
        """createJob: commands run in order in one sandbox (async)."""
        return self._json("createJob", body={"vm_id": vm, "commands": commands})

    def get_job(self, job_id: str) -> dict[str, Any]:
        """getJob: the job and its executions."""
        return self._json("getJob", params={"id": job_id})

    # --- background processes

    def start_process(self, vm: str, command: str, args: list[str] | None = None, *, env: dict[str, str] | None = None,
                      cwd: str | None = None, user: str | None = None, timeout: int | None = None,
                      shell: bool | None = None) -> int:
        """exec with background: starts the command and returns its PID at
        once; the sandbox keeps its last 1 MiB of output (process_output)."""
        req = {**exec_request(command, args, env, cwd, user, timeout, shell), "background": True}
        return self._json("exec", params={"id": vm}, body=req)["pid"]

    def processes(self, vm: str) -> list[dict[str, Any]]:
        """listProcesses: the processes started with background or keep_running (at most 256)."""
        return self._json("listProcesses", params={"id": vm}).get("processes") or []

    def signal_process(self, vm: str, pid: int, signal: str = "TERM") -> None:
        """signalProcess: signal ("TERM", "KILL", ...) to a process started
        through Aetherium that still runs (404 for any other PID, 409 once it exited)."""
        self._call("signalProcess", params={"id": vm, "pid": str(pid)}, body={"signal": signal}).close()

    def process_output(self, vm: str, pid: int, *, follow: bool = False) -> ProcessOutput:
        """processOutput: the output the sandbox kept and, with follow, what
        follows until the process exits (reattaching). exit is None while
        it runs (without follow). Never stops the process."""
        with self._call("processOutput", params={"id": vm, "pid": str(pid)}, query={"follow": follow or None},
                        timeout=None) as r:
            res = ProcessOutput(dropped=int(r.headers.get("X-Output-Dropped") or 0))
            while raw := r.readline(MAX_EVENT_LINE + 1):
                d = json.loads(raw)
                if d.get("type") in ("stdout", "stderr"):
                    chunk = base64.b64decode(d.get("data") or "")
                    if d["type"] == "stdout":
                        res.stdout_bytes += chunk
                    else:
                        res.stderr_bytes += chunk
                elif d.get("type") == "exit":
                    res.exit = d
                elif d.get("type") == "error":
                    e = d.get("error") or {}
                    raise error_for(200, e.get("code", "internal"), e.get("message", "output failed"))
            return res

    # --- files

    def list_dir(self, vm: str, path: str) -> dict[str, Any]:
        """listDirectory: {"path", "entries", "truncated"}; entries as lstat
        sees them (symlinks not followed), at most 10,000."""
        return self._json("listDirectory", params={"id": vm}, query={"path": path})

    def watch_dir(self, vm: str, path: str, *, recursive: bool = False, timeout: float | None = None) -> EventStream:
        """watchDirectory: changes under path from now on, as an iterator of
        FileEvent dicts ({"op", "path", "dir"}); it is watching when this
        returns. Close it to stop."""
        r = self._call("watchDirectory", params={"id": vm}, query={"path": path, "recursive": recursive or None},
                       timeout=timeout)
        return EventStream(r)


    def write_file(self, vm: str, path: str, data: bytes | str, *, mode: int | None = None) -> dict[str, Any]:
        """writeFile: data to path in the sandbox (mode like 0o755)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        return self._json("writeFile", params={"id": vm}, query={"path": path, "mode": _octal(mode)}, raw=raw,
                          content_type="application/octet-stream")

    def read_file(self, vm: str, path: str, *, max_bytes: int = 1 << 30) -> bytes:
        """readFile: the whole file. A transfer cut short, or a file larger
        than max_bytes, raises instead of returning part of it."""
        with self._call("readFile", params={"id": vm}, query={"path": path}, timeout=None) as r:
            size = int(r.headers.get("Content-Length", "-1"))
            if size > max_bytes:
                raise AetheriumError(f"{path} is {size} bytes, more than max_bytes {max_bytes}", code="too_large")
            try:
                data = r.read(max_bytes + 1)
            except (http.client.HTTPException, OSError) as e:
                raise TransportError(f"download of {path} broke: {e}") from e
            if len(data) > max_bytes or (size >= 0 and len(data) != size):
                raise TransportError(f"download of {path} ended after {len(data)} of {size} bytes")
            return data

    # --- tasks

    def get_task(self, task_id: str, *, wait: float | None = None) -> Task:
        """getTask; wait long-polls up to that many seconds (at most 60) for it to finish."""
        q = {"wait": f"{wait:g}s"} if wait else None
        return self._json("getTask", params={"id": task_id}, query=q, timeout=None if wait is None else wait + 30)

    def wait_task(self, task_id: str, *, timeout: float | None = None) -> Task:
        """Long-polls until the task succeeded (returns it) or failed (raises
        TaskFailedError); timeout in seconds, None waits for ever."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 30.0 if deadline is None else min(30.0, deadline - time.monotonic())
            if left <= 0:
                raise AetheriumError(f"task {task_id} did not finish within {timeout}s", code="timeout")
            t = self.get_task(task_id, wait=max(left, 0.1))
            if t["status"] == "succeeded":
                return t
            if t["status"] == "failed":
                raise TaskFailedError(t)

    def list_tasks(self, *, status: str | None = None, limit: int = 100, cursor: str = "") -> dict[str, Any]:
        """listTasks: one page, newest first ({"tasks": [...], "next": cursor})."""
        return self._json("listTasks", query={"status": status, "limit": limit, "cursor": cursor})

    def events(self, *, kind: str | None = None, vm: str | None = None, task_id: str | None = None,
               timeout: float | None = None) -> EventStream:
        """streamEvents: the state changes from now on, as an iterator of
        Event dicts; it is subscribed when this returns. timeout bounds
        each wait for the next line in seconds (the server sends a
        keep-alive every 15s); None waits for ever. Close it to stop."""
        r = self._call("streamEvents", query={"kind": kind, "vm_id": vm, "task_id": task_id}, timeout=timeout)
        return EventStream(r)

    # --- templates and images

    def create_template(self, name: str, *, wait: bool = True, wait_timeout: float | None = 600,
                        **fields: Any) -> dict[str, Any]:
        """createTemplate. fields: base, tools, tool_versions, setup,
        pool_size, egress. With wait it returns the ready template (a cache
        hit returns at once); without, the TemplateAccepted body."""
        acc = self._json("createTemplate", body={"name": name, **{k: v for k, v in fields.items() if v is not None}})
        if not wait:
            return acc
        if acc.get("task_id"):
            self.wait_task(acc["task_id"], timeout=wait_timeout)
        return self.get_template(name)

    def list_templates(self) -> list[Template]:
        """listTemplates, by name."""
        return self._json("listTemplates").get("templates") or []

    def get_template(self, name: str) -> Template:
        """getTemplate by name or ID."""
        return self._json("getTemplate", params={"name": name})

    def delete_template(self, name: str, *, wait: bool = True) -> dict[str, Any]:
        """deleteTemplate and its image; with wait, returns the finished task."""
        acc = self._json("deleteTemplate", params={"name": name})
        return self.wait_task(acc["task_id"], timeout=120) if wait else acc

    def set_template_pool(self, name: str, size: int) -> dict[str, Any]:
        """setTemplatePool: keep size started sandboxes ready."""
        return self._json("setTemplatePool", params={"name": name}, body={"size": size})

    def build_image(self, *, worker: str | None = None, **spec: Any) -> dict[str, Any]:
        """buildImage (admin, async): spec is ref, suite, include, mirror, force."""
        return self._json("buildImage", query={"worker": worker}, body=spec)

    # --- administration (admin keys)

    def create_project(self, name: str, quota: dict[str, int] | None = None) -> dict[str, Any]:
        """createProject."""
        return self._json("createProject", body={"name": name, "quota": quota or {}})

    def list_projects(self) -> list[Project]:
        """listProjects."""
        return self._json("listProjects").get("projects") or []

    def get_project(self, project: str) -> dict[str, Any]:
        """getProject by ID or name."""
        return self._json("getProject", params={"id": project})

    def set_project_quota(self, project: str, quota: dict[str, int]) -> dict[str, Any]:
        """setProjectQuota."""
        return self._json("setProjectQuota", params={"id": project}, body=quota)

    def delete_project(self, project: str) -> None:
        """deleteProject."""
        self._call("deleteProject", params={"id": project}).close()

    def create_key(self, *, project: str = "", role: str = "member", name: str = "",
                   ttl_seconds: int = 0) -> dict[str, Any]:
        """createKey: the answer's "key" is the secret, shown this once."""
        return self._json("createKey", body={"project": project, "role": role, "name": name,
                                             "ttl_seconds": ttl_seconds})

    def list_keys(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """listKeys."""
        return self._json("listKeys", query={"project": project}).get("keys") or []

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """revokeKey."""
        return self._json("revokeKey", params={"id": key_id})

    def list_audit(self, *, limit: int | None = None, before: int | None = None,
                   project: str | None = None) -> dict[str, Any]:
        """listAudit: one page ({"entries": [...], "next": before})."""
        return self._json("listAudit", query={"limit": limit, "before": before, "project": project})

    def list_workers(self) -> list[dict[str, Any]]:
        """listWorkers: the hosts that run sandboxes."""
        return self._json("listWorkers").get("workers") or []

    def query_logs(self, **query: Any) -> LogPage:
        """queryLogs: query is the LogQuery body (vm_id, stream, contains, ...)."""
        return self._json("queryLogs", body=query)


@dataclass
class ProcessOutput:
    """A background process's output as process_output read it."""

    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    exit: dict[str, Any] | None = None
    dropped: int = 0

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")


class EventStream:
    """An open Server-Sent Events stream (GET /api/v1/events, a directory
    watch): iterate it for its JSON objects. Close it (or use it as a
    context manager) to unsubscribe."""

    def __init__(self, resp: Response):
        self._resp = resp

    def __iter__(self) -> Iterator[Event]:
        data: list[bytes] = []
        while True:
            try:
                line = self._resp.readline(MAX_SSE_LINE + 1)
            except (OSError, ValueError) as e:  # closed under us
                raise TransportError(f"event stream broken: {e}") from e
            if not line:
                return
            if len(line) > MAX_SSE_LINE:
                raise TransportError(f"event line longer than {MAX_SSE_LINE} bytes")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
            elif not line and data:
                yield json.loads(b"\n".join(data))
                data = []

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _octal(mode: int | None) -> str | None:
    return None if mode is None else format(mode, "o")
