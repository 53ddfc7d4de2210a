"""HTTP transport: pooled keep-alive connections, JSON errors, retries."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
from typing import Any, Iterable

from .errors import AetheriumError, TransportError, error_for

IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})
MAX_ERROR_BODY = 64 << 10
MAX_RETRY_AFTER = 30.0

# Failures of a kept-alive connection that the server had already closed:
# the request never reached a handler, so it is sent again on a new one.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Response:
    """An open response. Read it, then close() it (or use it as a context
    manager): a fully read response gives its connection back to the pool."""

    def __init__(self, transport: Transport, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 reusable: bool = True):
        self._transport = transport
        self._conn = conn
        self._reusable = reusable
        self.raw = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def readline(self, limit: int) -> bytes:
        return self.raw.readline(limit)

    def json(self) -> Any:
        body = self.raw.read()
        return json.loads(body) if body else None

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._reusable and self.raw.isclosed() and not self.raw.will_close:
            self._transport._release(conn)
        else:
            self.raw.close()
            conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Transport:
    """Sends requests to one aetherd. Safe for concurrent use: each request
    takes an idle connection from the pool or opens one."""

    def __init__(self, base_url: str, api_key: str, project: str | None, timeout: float, max_retries: int,
                 backoff: float, user_agent: str):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"server {base_url!r} is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port
        self._prefix = u.path.rstrip("/")
        self.api_key = api_key
        self.project = project
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.user_agent = user_agent
        self.retries = 0  # requests sent again, over this transport's life
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _new_conn(self, timeout: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _take(self, timeout: float | None) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                conn = self._idle.pop()
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                return conn, True
        return self._new_conn(timeout), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < 16:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def headers(self, content_type: str | None) -> dict[str, str]:
        h = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        if self.project:
            h["X-Aether-Project"] = self.project
        if content_type:
            h["Content-Type"] = content_type
        return h

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        q = {k: _qs(v) for k, v in (query or {}).items() if v is not None and v != ""}
        return self._prefix + path + ("?" + urllib.parse.urlencode(q) if q else "")

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: bytes | None = None,
                content_type: str | None = None, timeout: float | None | str = "default") -> Response:
        """Sends a request whose body is bytes (or none) and returns the
        response once its status is a success; an error status raises its
        typed error. Retries: a 429 rate_limited always (the guard refused
        it before any handler ran), a 503 and a failure to connect for
        GET/HEAD/DELETE, each after Retry-After or an exponential backoff."""
        t = self.timeout if timeout == "default" else timeout
        target = self.url(path, query)
        attempt = 0
        while True:
            try:
                return self._send_once(method, target, body, content_type, t)
            except AetheriumError as err:
                if attempt >= self.max_retries or not _retryable(method, err):
                    raise
                delay = err.retry_after if err.retry_after is not None else self.backoff * (2 ** attempt)
                time.sleep(min(delay, MAX_RETRY_AFTER) * (1 + random.random() * 0.1))
                attempt += 1
                self.retries += 1

    def _send_once(self, method: str, target: str, body: bytes | None, content_type: str | None,
                   timeout: float | None) -> Response:
        for fresh_try in (False, True):
            conn, reused = self._take(timeout) if not fresh_try else (self._new_conn(timeout), False)
            try:
                conn.request(method, target, body=body, headers=self.headers(content_type))
                resp = conn.getresponse()
            except _STALE as e:
                conn.close()
                if reused:
                    continue  # the server had closed the idle connection
                raise TransportError(f"cannot reach aetherd at {self.base_url}: {e}") from e
            except OSError as e:
                conn.close()
                raise TransportError(f"cannot reach aetherd at {self.base_url}: {e}") from e
            return self.check(Response(self, conn, resp))
        raise AssertionError("unreachable")

    def open_stream(self, method: str, target: str, headers: dict[str, str],
                    timeout: float | None) -> http.client.HTTPConnection:
        """A new connection with the request line and headers sent, for a
        body the caller writes itself (exec with stdin)."""
        conn = self._new_conn(timeout)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
        except OSError as e:
            conn.close()
            raise TransportError(f"cannot reach aetherd at {self.base_url}: {e}") from e
        return conn

    def check(self, resp: Response) -> Response:
        """Returns resp if it is a success; otherwise reads its error body,
        closes it and raises the typed error."""
        if resp.status < 400:
            return resp
        try:
            raw = resp.raw.read(MAX_ERROR_BODY)
        except OSError:
            raw = b""
        resp.close()
        code, message = "http", f"{resp.status} {resp.raw.reason}: {raw[:200].decode('utf-8', 'replace').strip()}"
        try:
            detail = json.loads(raw)["error"]
            code, message = str(detail["code"]), str(detail["message"])
        except (ValueError, KeyError, TypeError):
            pass
        return _raise(error_for(resp.status, code, message, _retry_after(resp.headers.get("Retry-After"))))


def _raise(err: AetheriumError) -> Response:
    raise err


def _retryable(method: str, err: AetheriumError) -> bool:
    if err.status == 429:
        return err.code == "rate_limited"
    if err.status == 503 or (err.status == 0 and isinstance(err, TransportError)):
        return method in IDEMPOTENT
    return False


def _retry_after(v: str | None) -> float | None:
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


def _qs(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def chunked(chunks: Iterable[bytes]) -> Iterable[bytes]:
    """HTTP/1.1 chunked transfer encoding of chunks, with its end."""
    for c in chunks:
        if c:
            yield b"%x\r\n%s\r\n" % (len(c), c)
    yield b"0\r\n\r\n"


def seg(s: str) -> str:
    """s as one URL path segment; an empty one is refused before sending."""
    if not s:
        raise ValueError("empty ID or name")
    return urllib.parse.quote(s, safe="")
