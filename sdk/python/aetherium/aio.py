"""asyncio front of the SDK: AsyncClient and AsyncSandbox.

Every method of Client and Sandbox is here as a coroutine that runs the
synchronous call in a worker thread (asyncio.to_thread), so an event loop
never blocks on the network; streams (exec_stream, events) become async
iterators. The sync classes are thread-safe, so many calls may be in flight
at once.

    from aetherium.aio import AsyncSandbox

    async with await AsyncSandbox.create() as sb:
        print((await sb.exec("echo hi")).stdout)
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

from .client import Client, EventStream
from .exec import ExecEvent, ExecResult, ExecStream
from .sandbox import Sandbox
from .types import Event

T = TypeVar("T")
_DONE = object()


async def _aiter(it: Iterator[T]) -> AsyncIterator[T]:
    """Drains a blocking iterator one item per worker-thread hop."""
    while (item := await asyncio.to_thread(next, it, _DONE)) is not _DONE:
        yield item  # type: ignore[misc]


class _Async:
    """Forwards attribute reads to the wrapped object, awaiting its methods
    in a worker thread."""

    def __init__(self, sync: Any):
        self._sync = sync

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._sync, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        async def call(*args: Any, **kw: Any) -> Any:
            return await asyncio.to_thread(attr, *args, **kw)

        return call


class AsyncExecStream:
    """An exec in flight: async-iterate its events; send stdin; await result()."""

    def __init__(self, stream: ExecStream):
        self._s = stream

    def __aiter__(self) -> AsyncIterator[ExecEvent]:
        return _aiter(iter(self._s))

    async def send(self, data: bytes | str) -> None:
        await asyncio.to_thread(self._s.send, data)

    async def close_stdin(self) -> None:
        await asyncio.to_thread(self._s.close_stdin)

    async def result(self, on_stdout: Callable[[bytes], None] | None = None,
                     on_stderr: Callable[[bytes], None] | None = None) -> ExecResult:
        return await asyncio.to_thread(self._s.result, on_stdout, on_stderr)

    async def close(self) -> None:
        await asyncio.to_thread(self._s.close)

    async def __aenter__(self) -> AsyncExecStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncEventStream:
    """Server-Sent Events as an async iterator."""

    def __init__(self, stream: EventStream):
        self._s = stream

    def __aiter__(self) -> AsyncIterator[Event]:
        return _aiter(iter(self._s))

    async def close(self) -> None:
        await asyncio.to_thread(self._s.close)

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncClient(_Async):
    """Client's methods as coroutines (same names and arguments)."""

    def __init__(self, *args: Any, client: Client | None = None, **kw: Any):
        super().__init__(client or Client(*args, **kw))

    @property
    def sync(self) -> Client:
        return self._sync

    async def exec_stream(self, *args: Any, **kw: Any) -> AsyncExecStream:
        return AsyncExecStream(await asyncio.to_thread(self._sync.exec_stream, *args, **kw))

    async def events(self, *args: Any, **kw: Any) -> AsyncEventStream:
        return AsyncEventStream(await asyncio.to_thread(self._sync.events, *args, **kw))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self._sync.close)


class AsyncSandbox(_Async):
    """Sandbox's methods as coroutines; `files` too."""

    def __init__(self, sandbox: Sandbox):
        super().__init__(sandbox)
        self.files = _Async(sandbox.files)

    @classmethod
    async def create(cls, template: str | None = None, *, client: AsyncClient | Client | None = None,
                     **kw: Any) -> AsyncSandbox:
        sync = client.sync if isinstance(client, AsyncClient) else client
        return cls(await asyncio.to_thread(functools.partial(Sandbox.create, template, client=sync, **kw)))

    @classmethod
    async def connect(cls, vm: str, *, client: AsyncClient | Client | None = None) -> AsyncSandbox:
        sync = client.sync if isinstance(client, AsyncClient) else client
        return cls(await asyncio.to_thread(Sandbox.connect, vm, client=sync))

    @property
    def id(self) -> str:
        return self._sync.id

    @property
    def name(self) -> str:
        return self._sync.name

    async def exec_stream(self, *args: Any, **kw: Any) -> AsyncExecStream:
        return AsyncExecStream(await asyncio.to_thread(self._sync.exec_stream, *args, **kw))

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self._sync.close)
