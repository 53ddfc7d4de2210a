"""The SDK against a real aetherd with real sandboxes. internal/e2e's
TestSDKs starts one on Docker and runs this with AETHER_URL and
AETHER_API_KEY (an admin key) set; without them these tests are skipped."""

import os
import secrets
import threading

import pytest

import aetherium
from aetherium import Client, Sandbox

pytestmark = pytest.mark.skipif(not os.environ.get("AETHER_URL"), reason="AETHER_URL not set (no aetherd to test against)")


@pytest.fixture(scope="module")
def client():
    with Client() as c:
        yield c


@pytest.fixture(scope="module")
def sb(client):
    with Sandbox.create(client=client, name="py-" + secrets.token_hex(3)) as s:
        yield s


def test_session_exec_and_files(client):
    with Sandbox.create(client=client) as sb:
        assert sb.info["status"] == "running"
        res = sb.exec("echo out; echo err >&2; exit 3")
        assert (res.stdout, res.stderr, res.exit_code, res.ok) == ("out\n", "err\n", 3, False)
        assert res.execution_id
        payload = bytes(range(256)) * 1000
        assert sb.files.write("/tmp/blob", payload, mode=0o600) == len(payload)
        assert sb.files.read("/tmp/blob") == payload
        assert sb.exec("stat -c %a /tmp/blob").stdout == "600\n"
        sb.files.write("/tmp/hello.txt", "héllo")
        assert sb.files.read_text("/tmp/hello.txt") == "héllo"
        vm_id = sb.id
    with pytest.raises(aetherium.FailedPreconditionError) as ei:
        client.exec(vm_id, "true")
    assert ei.value.status == 409 and "deleted" in ei.value.message


def test_exec_streams_events_in_order(sb):
    with sb.exec_stream("printf a; sleep 0.2; printf b >&2; sleep 0.2; printf c") as s:
        events = list(s)
    assert [(e.type, e.data) for e in events[:-1]] == [("stdout", b"a"), ("stderr", b"b"), ("stdout", b"c")]
    assert events[-1].type == "exit" and events[-1].exit_code == 0


def test_background_processes(client, sb):
    pid = client.start_process(sb.id, "echo a; sleep 30")
    assert any(p["pid"] == pid and p["running"] for p in client.processes(sb.id))
    while client.process_output(sb.id, pid).stdout != "a\n":
        pass  # until it has written
    client.signal_process(sb.id, pid, "TERM")
    out = client.process_output(sb.id, pid, follow=True)
    assert (out.stdout, out.exit["signal"]) == ("a\n", "SIGTERM")
    with pytest.raises(aetherium.ConflictError):
        client.signal_process(sb.id, pid)
    with pytest.raises(aetherium.NotFoundError):
        client.signal_process(sb.id, 1, "KILL")


def test_list_and_watch_a_directory(client, sb):
    sb.exec("mkdir -p /w && printf hi >/w/f && ln -sf /etc /w/l")
    entries = client.list_dir(sb.id, "/w")["entries"]
    assert [(e["name"], e["type"], e.get("target")) for e in entries] == [("f", "file", None), ("l", "symlink", "/etc")]
    with client.watch_dir(sb.id, "/w") as w:
        sb.exec("touch /w/g")
        for ev in w:
            if ev == {"op": "create", "path": "g"}:
                break


def test_exec_args_env_cwd(sb):
    res = sb.exec("sh", ["-c", 'echo "$GREETING $(pwd)"'], env={"GREETING": "hi"}, cwd="/tmp")
    assert res.stdout == "hi /tmp\n"


def test_exec_stdin_bytes_and_file(sb, tmp_path):
    assert sb.exec("wc -c", stdin=b"x" * 100000).stdout.strip() == "100000"
    p = tmp_path / "in"
    p.write_bytes(b"line1\nline2\n")
    with p.open("rb") as f:
        assert sb.exec("tac", stdin=f).stdout == "line2\nline1\n"


def test_exec_stdin_is_full_duplex(sb):
    """Each line is answered before the next is sent: output streams back
    while the request body is still open."""
    with sb.exec_stream("while read l; do echo got $l; done", stdin=True) as s:
        it = iter(s)
        for word in ("one", "two", "three"):
            s.send(word + "\n")
            ev = next(it)
            assert (ev.type, ev.data) == ("stdout", f"got {word}\n".encode())
        s.close_stdin()
        assert next(it).exit_code == 0


def test_exec_callbacks_and_timeout(sb):
    seen = []
    res = sb.exec("echo tick; sleep 30", timeout=1, on_stdout=seen.append)
    assert seen == [b"tick\n"] and res.timed_out and res.stdout == "tick\n"


def test_templates(client):
    name = "py-tpl-" + secrets.token_hex(3)
    tpl = client.create_template(name, setup=["echo baked > /etc/baked"])
    assert tpl["status"] == "ready"
    again = client.create_template(name, wait=False, setup=["echo baked > /etc/baked"])
    assert again["cached"] is True
    assert name in [t["name"] for t in client.list_templates()]
    with Sandbox.create(name, client=client) as sb:
        assert sb.info["template"] == tpl["id"]
        assert sb.exec("cat /etc/baked").stdout == "baked\n"
    client.delete_template(name)
    with pytest.raises(aetherium.NotFoundError):
        client.get_template(name)


def test_events(client):
    with client.events(kind="vm", timeout=120) as events:
        acc = client.create_sandbox("py-ev-" + secrets.token_hex(3), wait=False)
        kinds, statuses = set(), []
        for e in events:
            kinds.add(e["kind"])
            if e.get("vm_id") == acc["vm_id"]:
                statuses.append(e["status"])
                if e["status"] == "running":
                    break
    assert kinds == {"vm"}, "kind=vm delivered other kinds"
    assert statuses[-1] == "running", statuses
    client.delete_sandbox(acc["vm_id"])


def test_errors(client, sb):
    with pytest.raises(aetherium.NotFoundError) as ei:
        client.get_sandbox("no-such-sandbox")
    assert (ei.value.status, ei.value.code) == (404, "not_found")
    with pytest.raises(aetherium.UnauthenticatedError) as ei:
        Client(api_key="ak_wrong").list_sandboxes()
    assert ei.value.status == 401
    with pytest.raises(aetherium.InvalidArgumentError) as ei:
        client.create_sandbox("Not A DNS Label")
    assert ei.value.status == 400 and "name" in ei.value.message
    with pytest.raises(aetherium.NotFoundError):
        client.exec("no-such-sandbox", "true")
    with client.exec_stream("no-such-sandbox", "cat", stdin=True) as s, pytest.raises(aetherium.NotFoundError):
        next(iter(s))
    with pytest.raises(aetherium.InvalidArgumentError):
        sb.exec("pwd", cwd="relative")
    with pytest.raises(aetherium.NotFoundError):
        sb.files.read("/no/such/file")


def test_failed_create_raises_task_failed(client):
    with pytest.raises(aetherium.TaskFailedError) as ei:
        Sandbox.create(client=client, image="aether-no-such-image:1")
    assert ei.value.task["type"] == "vm:create" and "not present" in ei.value.task["error"]


def test_rate_limited_requests_are_retried(client):
    """aetherd runs with a low default rate (TestSDKs's config): a burst of
    GETs meets 429s, which the client waits out per Retry-After."""
    key = client.create_key(role="member", name="py-rate")["key"]
    strict = Client(api_key=key, max_retries=0)
    with pytest.raises(aetherium.RateLimitedError) as ei:
        for _ in range(200):
            strict.list_templates()
    assert ei.value.retry_after and ei.value.retry_after >= 1
    patient = Client(api_key=key)
    for _ in range(60):
        patient.list_templates()
    assert patient.retries > 0


def test_concurrent_execs_share_a_client(sb):
    results = [None] * 8

    def run(i):
        results[i] = sb.exec(f"echo {i}").stdout

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [f"{i}\n" for i in range(8)]


def test_async_session_streams_and_concurrency(client):
    import asyncio

    from aetherium.aio import AsyncClient, AsyncSandbox

    async def main():
        ac = AsyncClient(client=client)
        async with await AsyncSandbox.create(client=ac) as sb:
            assert sb.info["status"] == "running"
            # Three execs in flight at once, each in its own worker thread.
            results = await asyncio.gather(*(sb.exec(f"sleep 1; echo {i}") for i in range(3)))
            assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]
            await sb.files.write("/tmp/a.txt", "async")
            assert await sb.files.read_text("/tmp/a.txt") == "async"
            async with await sb.exec_stream("read l; echo got $l", stdin=True) as s:
                await s.send("x\n")
                await s.close_stdin()
                events = [e async for e in s]
            assert (events[0].type, events[0].data) == ("stdout", b"got x\n")
            assert events[-1].type == "exit" and events[-1].exit_code == 0
            vm_id = sb.id
        try:
            await ac.exec(vm_id, "true")
        except aetherium.FailedPreconditionError as e:
            return e
        raise AssertionError("exec in a deleted sandbox did not raise")

    err = asyncio.run(main())
    assert err.status == 409
