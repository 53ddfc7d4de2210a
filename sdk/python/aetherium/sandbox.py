"""The session API: Sandbox.create(...), sb.exec(...), sb.files, sb.close()."""

from __future__ import annotations

import secrets
from typing import Any, Callable

from .client import Client
from .errors import NotFoundError
from .exec import ExecResult, ExecStream, Stdin
from .types import VM


class Files:
    """A sandbox's files."""

    def __init__(self, sb: Sandbox):
        self._sb = sb

    def write(self, path: str, data: bytes | str, *, mode: int | None = None) -> int:
        """Writes data to path (an absolute path in the sandbox); returns its size."""
        return int(self._sb.client.write_file(self._sb.id, path, data, mode=mode)["size"])

    def read(self, path: str, *, max_bytes: int = 1 << 30) -> bytes:
        """The contents of path."""
        return self._sb.client.read_file(self._sb.id, path, max_bytes=max_bytes)

    def read_text(self, path: str) -> str:
        """The contents of path as UTF-8 text."""
        return self.read(path).decode()


class Sandbox:
    """One sandbox, created or connected to. Use it as a context manager, or
    call close(), to delete it."""

    def __init__(self, client: Client, info: VM):
        self.client = client
        self.info = info
        self.files = Files(self)

    @classmethod
    def create(cls, template: str | None = None, *, name: str | None = None, client: Client | None = None,
               timeout: int | None = None, **fields: Any) -> Sandbox:
        """Creates a sandbox from template (else the server's default
        image) and waits until it runs. name defaults to "sb-" and random
        hex; timeout expires it that many seconds after creation; fields
        are createSandbox's others (image, vcpus, memory_mb,
        additional_tools, idle_timeout_seconds, egress, ...). client
        defaults to Client() (AETHER_URL and AETHER_API_KEY)."""
        c = client or Client()
        info = c.create_sandbox(name or "sb-" + secrets.token_hex(4), template=template, timeout_seconds=timeout,
                                **fields)
        return cls(c, info)

    @classmethod
    def connect(cls, vm: str, *, client: Client | None = None) -> Sandbox:
        """The existing sandbox vm (ID or name)."""
        c = client or Client()
        return cls(c, c.get_sandbox(vm))

    @property
    def id(self) -> str:
        return str(self.info["id"])

    @property
    def name(self) -> str:
        return str(self.info["name"])

    def refresh(self) -> dict[str, Any]:
        """Reloads and returns info."""
        self.info = self.client.get_sandbox(self.id)
        return self.info

    def exec(self, command: str, args: list[str] | None = None, *, stdin: Stdin = None,
             on_stdout: Callable[[bytes], None] | None = None, on_stderr: Callable[[bytes], None] | None = None,
             **kw: Any) -> ExecResult:
        """Runs command to its end (see Client.exec)."""
        return self.client.exec(self.id, command, args, stdin=stdin, on_stdout=on_stdout, on_stderr=on_stderr, **kw)

    def exec_stream(self, command: str, args: list[str] | None = None, *, stdin: Stdin = None,
                    **kw: Any) -> ExecStream:
        """Starts command and returns its stream of events (see Client.exec_stream)."""
        return self.client.exec_stream(self.id, command, args, stdin=stdin, **kw)

    def set_timeout(self, seconds: int) -> None:
        """Expires the sandbox seconds from now (0 never)."""
        self.info = self.client.set_sandbox_timeout(self.id, seconds)

    def close(self) -> None:
        """Deletes the sandbox and waits for it to be gone; idempotent."""
        try:
            self.client.delete_sandbox(self.id)
        except NotFoundError:
            pass

    kill = close

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sandbox(id={self.id!r}, name={self.name!r}, status={self.info.get('status')!r})"
