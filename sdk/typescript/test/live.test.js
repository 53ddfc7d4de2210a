// The SDK against a real aetherd with real sandboxes. internal/e2e's
// TestSDKs starts one on Docker and runs this with AETHER_URL and
// AETHER_API_KEY (an admin key) set; without them these tests are skipped.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";
import { after, before, describe, test } from "node:test";

import {
  Client, FailedPreconditionError, InvalidArgumentError, NotFoundError, RateLimitedError, Sandbox, TaskFailedError,
  UnauthenticatedError,
} from "../dist/index.js";

const live = !!process.env.AETHER_URL;
const hex = () => randomBytes(3).toString("hex");
const text = (b) => new TextDecoder().decode(b);

describe("against aetherd", { skip: !live && "AETHER_URL not set (no aetherd to test against)" }, () => {
  const client = live ? new Client() : undefined;
  let sb;
  before(async () => { sb = await Sandbox.create({ client, name: "ts-" + hex() }); });
  after(async () => { await sb?.close(); });

  test("session: exec and files", async () => {
    const s = await Sandbox.create({ client });
    let id;
    try {
      assert.equal(s.info.status, "running");
      id = s.id;
      const res = await s.exec("echo out; echo err >&2; exit 3");
      assert.deepEqual([res.stdout, res.stderr, res.exitCode], ["out\n", "err\n", 3]);
      assert.ok(res.executionId);
      const payload = new Uint8Array(256 * 1000).map((_, i) => i % 256);
      assert.equal(await s.files.write("/tmp/blob", payload, { mode: 0o600 }), payload.length);
      assert.deepEqual(await s.files.read("/tmp/blob"), payload);
      assert.equal((await s.exec("stat -c %a /tmp/blob")).stdout, "600\n");
      await s.files.write("/tmp/hello.txt", "héllo");
      assert.equal(await s.files.readText("/tmp/hello.txt"), "héllo");
    } finally {
      await s.close();
    }
    await assert.rejects(client.exec(id, { command: "true" }),
      (e) => e instanceof FailedPreconditionError && e.status === 409 && e.message.includes("deleted"));
  });

  test("exec streams events in order through a ReadableStream", async () => {
    const s = await sb.execStream("printf a; sleep 0.2; printf b >&2; sleep 0.2; printf c");
    const events = [];
    for await (const ev of s.events) events.push(ev);
    assert.deepEqual(events.slice(0, -1).map((e) => [e.type, text(e.data)]), [["stdout", "a"], ["stderr", "b"], ["stdout", "c"]]);
    assert.equal(events.at(-1).type, "exit");
    assert.equal(events.at(-1).exit_code, 0);
  });

  test("background processes: start, list, read, follow, signal", async () => {
    const pid = await client.startProcess(sb.id, { command: "echo a; sleep 30" });
    assert.ok((await client.processes(sb.id)).some((p) => p.pid === pid && p.running));
    while ((await client.processOutput(sb.id, pid)).stdout !== "a\n") { /* until it has written */ }
    const following = client.processOutput(sb.id, pid, { follow: true });
    await client.signalProcess(sb.id, pid, "TERM");
    const out = await following;
    assert.deepEqual([out.stdout, out.exit?.signal], ["a\n", "SIGTERM"]);
    await assert.rejects(client.signalProcess(sb.id, pid), (e) => e.status === 409);
    await assert.rejects(client.signalProcess(sb.id, 1, "KILL"), (e) => e instanceof NotFoundError);
  });

  test("list and watch a directory", async () => {
    await sb.exec("mkdir -p /w && printf hi >/w/f && ln -sf /etc /w/l");
    const l = await client.listDir(sb.id, "/w");
    assert.deepEqual(l.entries.map((e) => [e.name, e.type, e.type === "file" ? e.size : e.target]), [["f", "file", 2], ["l", "symlink", "/etc"]]);
    const w = await client.watchDir(sb.id, "/w");
    await sb.exec("touch /w/g");
    for await (const ev of w) if (ev.op === "create" && ev.path === "g") break;
    w.close();
  });

  test("exec args, env, cwd", async () => {
    const res = await sb.exec("sh", ["-c", 'echo "$GREETING $(pwd)"'], { env: { GREETING: "hi" }, cwd: "/tmp" });
    assert.equal(res.stdout, "hi /tmp\n");
  });

  test("exec stdin from bytes and from a stream", async () => {
    assert.equal((await sb.exec("wc -c", undefined, { stdin: new Uint8Array(100000) })).stdout.trim(), "100000");
    const stream = new ReadableStream({
      start(c) { c.enqueue(new TextEncoder().encode("line1\n")); c.enqueue(new TextEncoder().encode("line2\n")); c.close(); },
    });
    assert.equal((await sb.exec("tac", undefined, { stdin: stream })).stdout, "line2\nline1\n");
  });

  test("exec stdin is full duplex", async () => {
    const s = await sb.execStream("while read l; do echo got $l; done", undefined, { stdin: true });
    const it = s[Symbol.asyncIterator]();
    for (const word of ["one", "two", "three"]) {
      await s.write(word + "\n");
      const { value } = await it.next();
      assert.deepEqual([value.type, text(value.data)], ["stdout", `got ${word}\n`]);
    }
    await s.closeStdin();
    const { value } = await it.next();
    assert.equal(value.type, "exit");
    assert.equal(value.exit_code, 0);
  });

  test("exec callbacks and the command's timeout", async () => {
    const seen = [];
    const res = await sb.exec("echo tick; sleep 30", undefined, { timeout_seconds: 1, onStdout: (b) => seen.push(text(b)) });
    assert.deepEqual(seen, ["tick\n"]);
    assert.equal(res.timedOut, true);
  });

  test("templates", async () => {
    const name = "ts-tpl-" + hex();
    const tpl = await client.createTemplate({ name, setup: ["echo baked > /etc/baked"] });
    assert.equal(tpl.status, "ready");
    const again = await client.createTemplate({ name, setup: ["echo baked > /etc/baked"] }, { wait: false });
    assert.equal(again.cached, true);
    assert.ok((await client.listTemplates()).some((t) => t.name === name));
    const s = await Sandbox.create({ client, template: name });
    try {
      assert.equal(s.info.template, tpl.id);
      assert.equal((await s.exec("cat /etc/baked")).stdout, "baked\n");
    } finally {
      await s.close();
    }
    await client.deleteTemplate(name);
    await assert.rejects(client.getTemplate(name), NotFoundError);
  });

  test("events", async () => {
    const events = await client.events({ kind: "vm" });
    const acc = await client.createSandbox({ name: "ts-ev-" + hex() }, { wait: false });
    const kinds = new Set(), statuses = [];
    for await (const e of events) {
      kinds.add(e.kind);
      if (e.vm_id === acc.vm_id) {
        statuses.push(e.status);
        if (e.status === "running") break;
      }
    }
    events.close();
    assert.deepEqual([...kinds], ["vm"]);
    assert.equal(statuses.at(-1), "running");
    await client.deleteSandbox(acc.vm_id);
  });

  test("typed errors", async () => {
    await assert.rejects(client.getSandbox("no-such-sandbox"), (e) => e instanceof NotFoundError && e.status === 404 && e.code === "not_found");
    await assert.rejects(new Client({ apiKey: "ak_wrong" }).listSandboxes(), (e) => e instanceof UnauthenticatedError && e.status === 401);
    await assert.rejects(client.createSandbox({ name: "Not A DNS Label" }),
      (e) => e instanceof InvalidArgumentError && e.status === 400 && e.message.includes("name"));
    await assert.rejects(client.exec("no-such-sandbox", { command: "true" }), NotFoundError);
    const s = await client.execStream("no-such-sandbox", { command: "cat" }, { stdin: true });
    await assert.rejects(s.result(), NotFoundError);
    await assert.rejects(sb.exec("pwd", undefined, { cwd: "relative" }), InvalidArgumentError);
    await assert.rejects(sb.files.read("/no/such/file"), NotFoundError);
  });

  test("a failed create throws TaskFailedError", async () => {
    await assert.rejects(Sandbox.create({ client, image: "aether-no-such-image:1" }),
      (e) => e instanceof TaskFailedError && e.task.type === "vm:create" && e.task.error.includes("not present"));
  });

  test("rate-limited requests are retried after Retry-After", async () => {
    const { key } = await client.createKey({ role: "member", name: "ts-rate" });
    const strict = new Client({ apiKey: key, maxRetries: 0 });
    await assert.rejects(async () => { for (let i = 0; i < 200; i++) await strict.listTemplates(); },
      (e) => e instanceof RateLimitedError && e.retryAfter >= 1);
    const patient = new Client({ apiKey: key });
    for (let i = 0; i < 60; i++) await patient.listTemplates();
    assert.ok(patient.retries > 0);
  });

  test("sequential execs reuse their connection", async () => {
    // A TCP proxy in front of aetherd counts the connections the client opens.
    const target = new URL(process.env.AETHER_URL);
    let conns = 0;
    const proxy = createServer((c) => {
      conns++;
      const up = connect(Number(target.port), target.hostname);
      c.pipe(up).pipe(c);
      c.on("error", () => up.destroy());
      up.on("error", () => c.destroy());
    });
    await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
    try {
      const via = new Client({ baseUrl: `http://127.0.0.1:${proxy.address().port}` });
      for (let i = 0; i < 10; i++) assert.equal((await via.exec(sb.id, { command: `echo ${i}` })).stdout, `${i}\n`);
      // Node's pool may open a second connection while the first is being
      // released; an exec that dropped its connection would open ten.
      assert.ok(conns <= 2, `10 sequential execs opened ${conns} connections`);
    } finally {
      proxy.close();
    }
  });

  test("concurrent execs share a client", async () => {
    const outs = await Promise.all([...Array(8).keys()].map(async (i) => (await sb.exec(`echo ${i}`)).stdout));
    assert.deepEqual(outs, [...Array(8).keys()].map((i) => `${i}\n`));
  });
});
