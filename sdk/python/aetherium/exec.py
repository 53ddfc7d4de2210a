"""Streaming exec: POST /api/v1/vms/{id}/exec as an iterator of events."""

from __future__ import annotations

import base64
import json
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Union

from ._http import Response, Transport, chunked, seg
from .errors import AetheriumError, TransportError, error_for

# MAX_EVENT_LINE bounds one NDJSON line of the stream (as the Go client).
MAX_EVENT_LINE = 4 << 20

# Stdin is what a command reads: bytes or str (sent, then closed), a binary
# file or an iterable of bytes (pumped until it ends), or True: send it
# yourself with ExecStream.send() and ExecStream.close_stdin().
Stdin = Union[bytes, str, BinaryIO, Iterable[bytes], bool, None]


@dataclass
class ExecEvent:
    """One event of an exec: type "stdout" or "stderr" with data, or the
    final "exit" with the exit fields."""

    type: str
    data: bytes = b""
    exit_code: int | None = None
    signal: str = ""
    timed_out: bool = False
    duration_ms: int = 0
    execution_id: str = ""


@dataclass
class ExecResult:
    """How a command ended and what it wrote. stdout and stderr keep at most
    max_output bytes each (the *_truncated flags say when they were cut)."""

    exit_code: int | None
    signal: str = ""
    timed_out: bool = False
    duration_ms: int = 0
    execution_id: str = ""
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        """The command exited 0."""
        return self.exit_code == 0


def exec_request(command: str, args: list[str] | None, env: dict[str, str] | None, cwd: str | None,
                 user: str | None, timeout: int | None, shell: bool | None = None) -> dict[str, Any]:
    """The Exec body. shell None means a shell line when args is empty;
    False runs command as the program even with no args."""
    req: dict[str, Any] = {"command": command}
    for k, v in (("args", args), ("env", env), ("cwd", cwd), ("user", user), ("timeout_seconds", timeout)):
        if v:
            req[k] = v
    if shell is not None:
        req["shell"] = shell
    return req


class ExecStream:
    """A running command. Iterate it for ExecEvents (stdout/stderr as they
    come, then exit); result() drains it and returns the ExecResult. With
    stdin=True, send() and close_stdin() feed the command while it runs
    (the request body streams in full duplex); the server answers with the
    command's first output, so an error such as NotFoundError is raised by
    the first next() rather than by exec_stream(). Close it (or use it as
    a context manager) to abandon the command's stream early."""

    def __init__(self, transport: Transport, vm: str, req: dict[str, Any], stdin: Stdin, timeout: float | None):
        self._result: ExecResult | None = None
        self._queue: queue.Queue[bytes | None] | None = None
        self._sender: threading.Thread | None = None
        self._resp: Response | None = None
        self._pending: tuple[Transport, Any] | None = None
        path = "/api/v1/vms/" + seg(vm) + "/exec"
        line = json.dumps(req).encode()
        if stdin is None or stdin is False:
            self._resp = transport.request("POST", path, body=line, content_type="application/json", timeout=timeout)
            return
        self._resp = self._start_duplex(transport, path, line, stdin, timeout)

    def _start_duplex(self, transport: Transport, path: str, line: bytes, stdin: Stdin,
                      timeout: float | None) -> Response | None:
        if isinstance(stdin, str):
            stdin = stdin.encode()
        if isinstance(stdin, bytes):
            chunks: Iterable[bytes] = [stdin]
        elif stdin is True:
            self._queue = queue.Queue()
            chunks = iter(self._queue.get, None)
        elif hasattr(stdin, "read"):
            chunks = iter(lambda: stdin.read(64 << 10), b"")  # type: ignore[union-attr]
        else:
            chunks = stdin  # type: ignore[assignment]
        headers = transport.headers("application/json")
        headers["Transfer-Encoding"] = "chunked"
        conn = transport.open_stream("POST", transport.url(path, {"stdin": True}), headers, timeout)

        def pump() -> None:
            try:
                conn.send(b"%x\r\n%s\n\r\n" % (len(line) + 1, line))
                for c in chunked(chunks):
                    conn.send(c)
            except OSError:
                pass  # the server stopped reading: the response says why

        self._sender = threading.Thread(target=pump, name="aetherium-exec-stdin", daemon=True)
        self._sender.start()
        self._pending = (transport, conn)
        if stdin is True:
            # The server answers with the command's first output, which may
            # wait for stdin the caller sends after this returns.
            return None
        return self._await_response()

    def _await_response(self) -> Response:
        transport, conn = self._pending
        try:
            try:
                resp = conn.getresponse()
            except OSError as e:
                conn.close()
                raise TransportError(f"exec stream broken: {e}") from e
            # A connection whose body a thread writes is never pooled.
            return transport.check(Response(transport, conn, resp, reusable=False))
        except AetheriumError:
            self.close_stdin()  # frees the sender
            raise

    def _response(self) -> Response:
        if self._resp is None:
            self._resp = self._await_response()
        return self._resp

    def send(self, data: bytes | str) -> None:
        """Writes data to the command's stdin (stdin=True only)."""
        if self._queue is None:
            raise ValueError("send() needs exec(..., stdin=True)")
        self._queue.put(data.encode() if isinstance(data, str) else bytes(data))

    def close_stdin(self) -> None:
        """Ends the command's stdin (stdin=True only); idempotent."""
        if self._queue is not None:
            self._queue.put(None)

    def __iter__(self) -> Iterator[ExecEvent]:
        while self._result is None:
            raw = self._response().readline(MAX_EVENT_LINE + 1)
            if not raw:
                self.close()
                raise TransportError("exec stream ended without an exit event")
            if len(raw) > MAX_EVENT_LINE:
                self.close()
                raise TransportError(f"exec event longer than {MAX_EVENT_LINE} bytes")
            ev = self._event(raw)
            if ev is not None:
                yield ev

    def _event(self, raw: bytes) -> ExecEvent | None:
        try:
            d = json.loads(raw)
        except ValueError as e:
            self.close()
            raise TransportError(f"bad exec event: {e}") from e
        t = d.get("type")
        if t in ("stdout", "stderr"):
            return ExecEvent(t, base64.b64decode(d.get("data") or ""))
        if t == "exit":
            self._result = ExecResult(exit_code=d.get("exit_code"), signal=d.get("signal", ""),
                                      timed_out=bool(d.get("timed_out")), duration_ms=d.get("duration_ms", 0),
                                      execution_id=d.get("execution_id", ""))
            self._finish()
            return ExecEvent("exit", exit_code=self._result.exit_code, signal=self._result.signal,
                             timed_out=self._result.timed_out, duration_ms=self._result.duration_ms,
                             execution_id=self._result.execution_id)
        if t == "error":
            self.close()
            e = d.get("error") or {}
            raise error_for(200, e.get("code", "internal"), e.get("message", "exec failed"))
        return None  # an event type this SDK does not know yet

    def _finish(self) -> None:
        self._resp.read()  # to the end of the body, so the connection is reused
        if self._sender is not None:
            self.close_stdin()
            self._sender.join(timeout=5)
        self.close()

    def result(self, on_stdout: Callable[[bytes], None] | None = None,
               on_stderr: Callable[[bytes], None] | None = None, max_output: int = 16 << 20) -> ExecResult:
        """Reads the rest of the stream, passing output to the callbacks as
        it arrives, and returns how the command ended."""
        out, err = bytearray(), bytearray()
        cut = {"stdout": False, "stderr": False}
        for ev in self:
            if ev.type == "exit":
                break
            buf, cb = (out, on_stdout) if ev.type == "stdout" else (err, on_stderr)
            if cb is not None:
                cb(ev.data)
            room = max_output - len(buf)
            if len(ev.data) > room:
                cut[ev.type] = True
            buf += ev.data[:max(room, 0)]
        assert self._result is not None
        self._result.stdout_bytes, self._result.stderr_bytes = bytes(out), bytes(err)
        self._result.stdout_truncated, self._result.stderr_truncated = cut["stdout"], cut["stderr"]
        return self._result

    def close(self) -> None:
        """Abandons the stream (the server then cancels the command)."""
        if self._queue is not None:
            self._queue.put(None)
        if self._resp is not None:
            self._resp.close()
        elif self._pending is not None:
            self._pending[1].close()

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
