// Client: one method per API operation (internal/api/openapi.json).

import { readFileSync } from "node:fs";
import { join } from "node:path";

import { AetheriumError, TaskFailedError, TransportError, errorFor } from "./errors.js";
import { ExecEvent, ExecResult, ExecStream, Stdin, ndjsonEvents, stdinBody } from "./exec.js";
import type {
  Accepted, AetherEvent, CreateTemplate, CreateVM, DirListing, Exec, Execution, FileEvent, Job, LogPage, LogQuery, Preview,
  Process, Project, Quota, Task, Template, VM,
} from "./types.js";

export const VERSION = "0.1.0";
const DEFAULT_URL = "http://127.0.0.1:8080";
const MAX_ERROR_BODY = 64 << 10;
const MAX_RETRY_AFTER_MS = 30_000;
/** MAX_SSE_LINE bounds one line of the event stream. */
export const MAX_SSE_LINE = 1 << 20;

/**
 * OPERATIONS maps each operationId of the OpenAPI document to its method
 * and path; test/openapi.test.js checks it against internal/api/openapi.json
 * both ways, so an operation added to the API fails this SDK's tests until
 * it is here. Each client method names its operation.
 */
export const OPERATIONS = {
  getHealth: ["GET", "/health"],
  getMetrics: ["GET", "/metrics"],
  getOpenAPI: ["GET", "/api/v1/openapi.json"],
  createSandbox: ["POST", "/api/v1/vms"],
  listSandboxes: ["GET", "/api/v1/vms"],
  getSandbox: ["GET", "/api/v1/vms/{id}"],
  deleteSandbox: ["DELETE", "/api/v1/vms/{id}"],
  submitExecute: ["POST", "/api/v1/vms/{id}/execute"],
  exec: ["POST", "/api/v1/vms/{id}/exec"],
  listExecutions: ["GET", "/api/v1/vms/{id}/executions"],
  setSandboxTimeout: ["POST", "/api/v1/vms/{id}/timeout"],
  createPreview: ["POST", "/api/v1/vms/{id}/previews"],
  listPreviews: ["GET", "/api/v1/vms/{id}/previews"],
  revokePreview: ["DELETE", "/api/v1/vms/{id}/previews/{token}"],
  pauseSandbox: ["POST", "/api/v1/vms/{id}/pause"],
  resumeSandbox: ["POST", "/api/v1/vms/{id}/resume"],
  snapshotSandbox: ["POST", "/api/v1/vms/{id}/snapshot"],
  createSandboxPullRequest: ["POST", "/api/v1/vms/{id}/pull-request"],
  writeFile: ["PUT", "/api/v1/vms/{id}/files"],
  readFile: ["GET", "/api/v1/vms/{id}/files"],
  getConsole: ["GET", "/api/v1/vms/{id}/console"],
  listTasks: ["GET", "/api/v1/tasks"],
  getTask: ["GET", "/api/v1/tasks/{id}"],
  createJob: ["POST", "/api/v1/jobs"],
  getJob: ["GET", "/api/v1/jobs/{id}"],
  streamEvents: ["GET", "/api/v1/events"],
  createTemplate: ["POST", "/api/v1/templates"],
  listTemplates: ["GET", "/api/v1/templates"],
  getTemplate: ["GET", "/api/v1/templates/{name}"],
  deleteTemplate: ["DELETE", "/api/v1/templates/{name}"],
  setTemplatePool: ["POST", "/api/v1/templates/{name}/pool"],
  buildImage: ["POST", "/api/v1/images"],
  createProject: ["POST", "/api/v1/projects"],
  listProjects: ["GET", "/api/v1/projects"],
  getProject: ["GET", "/api/v1/projects/{id}"],
  setProjectQuota: ["PUT", "/api/v1/projects/{id}/quota"],
  deleteProject: ["DELETE", "/api/v1/projects/{id}"],
  createKey: ["POST", "/api/v1/keys"],
  listKeys: ["GET", "/api/v1/keys"],
  revokeKey: ["DELETE", "/api/v1/keys/{id}"],
  listAudit: ["GET", "/api/v1/audit"],
  listWorkers: ["GET", "/api/v1/workers"],
  queryLogs: ["POST", "/api/v1/logs/query"],
  streamLogs: ["GET", "/api/v1/logs/stream"],
  listProcesses: ["GET", "/api/v1/vms/{id}/processes"],
  signalProcess: ["POST", "/api/v1/vms/{id}/processes/{pid}/signal"],
  processOutput: ["GET", "/api/v1/vms/{id}/processes/{pid}/output"],
  listDirectory: ["GET", "/api/v1/vms/{id}/files/list"],
  watchDirectory: ["GET", "/api/v1/vms/{id}/files/watch"],
} as const satisfies Record<string, readonly [string, string]>;

export type OperationId = keyof typeof OPERATIONS;

/** NOT_COVERED are the API's operations this SDK leaves out, with why. */
export const NOT_COVERED: Record<string, string> = {
  getDashboard: "the web dashboard, for browsers",
  getDashboardAsset: "the web dashboard, for browsers",
  createSession: "the dashboard's cookie session, for browsers (the SDK sends its key)",
  getSession: "the dashboard's cookie session, for browsers",
  deleteSession: "the dashboard's cookie session, for browsers",
  openPty: "a WebSocket terminal (binary + JSON text messages), not yet wrapped; see docs/ARCHITECTURE.md",
  openTcp: "a WebSocket carrying raw TCP, not yet wrapped; see docs/ARCHITECTURE.md",
  proxyPortGet: "the sandbox's own HTTP service: fetch its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
  proxyPortPost: "the sandbox's own HTTP service: fetch its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
  proxyPortPut: "the sandbox's own HTTP service: fetch its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
  proxyPortPatch: "the sandbox's own HTTP service: fetch its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
  proxyPortDelete: "the sandbox's own HTTP service: fetch its URL (/api/v1/vms/{id}/ports/{port}/...) directly",
  receiveWebhook: "called by GitHub and Slack with their signatures, not by API clients",
};

const IDEMPOTENT = new Set(["GET", "HEAD", "DELETE"]);

/**
 * discoverKey finds the key a local client sends, as the aether CLI does:
 * AETHER_API_KEY, else $AETHER_DATA_DIR/admin.key, else
 * ./aether-data/admin.key; "" when there is none.
 */
export function discoverKey(): string {
  const k = process.env.AETHER_API_KEY?.trim();
  if (k) return k;
  try {
    return readFileSync(join(process.env.AETHER_DATA_DIR || "aether-data", "admin.key"), "utf8").trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw e;
  }
}

export interface ClientOptions {
  /** Default: AETHER_URL, else AETHER_SERVER (the CLI's), else http://127.0.0.1:8080. */
  baseUrl?: string;
  /** Default: discoverKey(). */
  apiKey?: string;
  /** The project an admin key acts in (X-Aether-Project). */
  project?: string;
  /** Bounds each plain request (not execs, downloads or event streams); default 60000. */
  timeoutMs?: number;
  /** Retries of rate-limited requests, and of GET/DELETE meeting a 503 or a
   * connection failure; default 4. */
  maxRetries?: number;
  /** First backoff when the server gives no Retry-After; doubles each retry. Default 200. */
  backoffMs?: number;
}

interface CallOptions {
  params?: Record<string, string>;
  query?: Record<string, string | number | boolean | undefined | null>;
  json?: unknown;
  raw?: Uint8Array | ReadableStream<Uint8Array>;
  contentType?: string;
  /** false: no timeout of the client's (streams). */
  timeout?: boolean | number;
  signal?: AbortSignal;
}

/** Client talks to one aetherd. Safe to share. */
export class Client {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly project?: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly backoffMs: number;
  /** How many requests this client has sent again (rate limits, 503s). */
  retries = 0;

  constructor(opts: ClientOptions = {}) {
    const base = opts.baseUrl || process.env.AETHER_URL || process.env.AETHER_SERVER || DEFAULT_URL;
    let u: URL;
    try {
      u = new URL(base);
    } catch {
      throw new AetheriumError(`server ${JSON.stringify(base)} is not an http(s) URL`, { code: "invalid_argument" });
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new AetheriumError(`server ${JSON.stringify(base)} is not an http(s) URL`, { code: "invalid_argument" });
    }
    this.baseUrl = base.replace(/\/+$/, "");
    this.apiKey = opts.apiKey ?? discoverKey();
    this.project = opts.project;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 4;
    this.backoffMs = opts.backoffMs ?? 200;
  }

  // --- plumbing

  private url(op: OperationId, o: CallOptions): string {
    let path: string = OPERATIONS[op][1];
    for (const [k, v] of Object.entries(o.params ?? {})) {
      if (!v) throw new AetheriumError(`empty ${k}`, { code: "invalid_argument" });
      path = path.replace(`{${k}}`, encodeURIComponent(v));
    }
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {})) {
      if (v !== undefined && v !== null && v !== "" && v !== false) q.set(k, String(v));
    }
    const qs = q.toString();
    return this.baseUrl + path + (qs ? "?" + qs : "");
  }

  private headers(contentType?: string): Record<string, string> {
    const h: Record<string, string> = { "User-Agent": `aetherium-typescript/${VERSION}`, Accept: "application/json" };
    if (this.apiKey) h.Authorization = "Bearer " + this.apiKey;
    if (this.project) h["X-Aether-Project"] = this.project;
    if (contentType) h["Content-Type"] = contentType;
    return h;
  }

  /**
   * call sends one operation and returns its response once the status is a
   * success; an error status throws its typed error. Retries: a 429
   * rate_limited always (the guard refused it before any handler ran), a
   * 503 or a failure to connect for GET/HEAD/DELETE, after Retry-After or
   * an exponential backoff. Streamed bodies are never retried.
   */
  async call(op: OperationId, o: CallOptions = {}): Promise<Response> {
    const method = OPERATIONS[op][0];
    let body: BodyInit | undefined;
    let contentType = o.contentType;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      contentType = "application/json";
    } else if (o.raw !== undefined) {
      body = o.raw as BodyInit;
    } else if (method === "POST" || method === "PUT") {
      body = "{}";
      contentType = "application/json";
    }
    const replayable = !(o.raw instanceof ReadableStream);
    const url = this.url(op, o);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.send(method, url, body, contentType, o);
      } catch (e) {
        if (!(e instanceof AetheriumError) || !replayable || attempt >= this.maxRetries || !retryable(method, e)) throw e;
        const delay = e.retryAfter !== undefined ? e.retryAfter * 1000 : this.backoffMs * 2 ** attempt;
        await sleep(Math.min(delay, MAX_RETRY_AFTER_MS) * (1 + Math.random() * 0.1));
        this.retries++;
      }
    }
  }

  private async send(method: string, url: string, body: BodyInit | undefined, contentType: string | undefined,
    o: CallOptions): Promise<Response> {
    const signals: AbortSignal[] = [];
    if (o.signal) signals.push(o.signal);
    if (o.timeout !== false) signals.push(AbortSignal.timeout(typeof o.timeout === "number" ? o.timeout : this.timeoutMs));
    let resp: Response;
    try {
      resp = await fetch(url, {
        method, body, headers: this.headers(contentType), signal: signals.length ? AbortSignal.any(signals) : undefined,
        ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
      } as RequestInit);
    } catch (e) {
      if (o.signal?.aborted) throw e;
      const why = (e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message;
      throw new TransportError(`cannot reach aetherd at ${this.baseUrl}: ${why}`, { cause: e });
    }
    if (resp.status < 400) return resp;
    throw await errorOf(resp);
  }

  private async json<T>(op: OperationId, o: CallOptions = {}): Promise<T> {
    const resp = await this.call(op, o);
    const text = await resp.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private async pages<T>(op: OperationId, field: string, o: CallOptions = {}): Promise<T[]> {
    const items: T[] = [];
    for (let cursor = ""; ;) {
      const page = await this.json<Record<string, unknown>>(op, { ...o, query: { ...o.query, limit: 1000, cursor } });
      items.push(...((page[field] as T[]) ?? []));
      cursor = (page.next as string) ?? "";
      if (!cursor) return items;
    }
  }

  // --- server

  /** getHealth: the server's health report (503 throws UnavailableError). */
  health(): Promise<Record<string, unknown>> { return this.json("getHealth"); }

  /** getMetrics: Prometheus text (admin key). */
  async metrics(): Promise<string> { return (await this.call("getMetrics")).text(); }

  /** getOpenAPI: the server's OpenAPI document. */
  openapi(): Promise<Record<string, unknown>> { return this.json("getOpenAPI"); }

  // --- sandboxes

  /** createSandbox; with wait (default) it waits for the create task and
   * returns the running sandbox (a failed create throws TaskFailedError). */
  async createSandbox(req: CreateVM, opts: { wait?: true; waitTimeoutMs?: number }): Promise<VM>;
  async createSandbox(req: CreateVM, opts: { wait: false }): Promise<Accepted>;
  async createSandbox(req: CreateVM): Promise<VM>;
  async createSandbox(req: CreateVM, opts: { wait?: boolean; waitTimeoutMs?: number } = {}): Promise<VM | Accepted> {
    const acc = await this.json<Accepted>("createSandbox", { json: req });
    if (opts.wait === false) return acc;
    await this.waitTask(acc.task_id, { timeoutMs: opts.waitTimeoutMs ?? 300_000 });
    return this.getSandbox(acc.vm_id!);
  }

  /** listSandboxes, every page; all includes deleted ones. */
  listSandboxes(opts: { all?: boolean } = {}): Promise<VM[]> {
    return this.pages<VM>("listSandboxes", "vms", { query: { all: opts.all } });
  }

  /** getSandbox by ID or name. */
  getSandbox(vm: string): Promise<VM> { return this.json("getSandbox", { params: { id: vm } }); }

  /** deleteSandbox; with wait (default) returns the finished delete task. */
  async deleteSandbox(vm: string, opts: { wait?: boolean } = {}): Promise<Task | Accepted> {
    const acc = await this.json<Accepted>("deleteSandbox", { params: { id: vm } });
    return opts.wait === false ? acc : this.waitTask(acc.task_id, { timeoutMs: 120_000 });
  }

  /** setSandboxTimeout: expire seconds from now (0 never). */
  setSandboxTimeout(vm: string, seconds: number): Promise<VM> {
    return this.json("setSandboxTimeout", { params: { id: vm }, json: { timeout_seconds: seconds } });
  }

  /** pauseSandbox (async). */
  pauseSandbox(vm: string): Promise<Accepted> { return this.json("pauseSandbox", { params: { id: vm } }); }

  /** resumeSandbox (async). */
  resumeSandbox(vm: string): Promise<Accepted> { return this.json("resumeSandbox", { params: { id: vm } }); }

  /** snapshotSandbox: save its filesystem as the template name (async). */
  snapshotSandbox(vm: string, template: string): Promise<Accepted & { template_id: string }> {
    return this.json("snapshotSandbox", { params: { id: vm }, json: { name: template } });
  }

  /** createSandboxPullRequest: push the git work at req.path as req.branch and open a PR (async). */
  createPullRequest(vm: string, req: { repo: string; path: string; branch: string; title: string; base?: string; body?: string }): Promise<Accepted> {
    return this.json("createSandboxPullRequest", { params: { id: vm }, json: req });
  }

  /** getConsole: the end of the sandbox's console log. */
  async console(vm: string, maxBytes?: number): Promise<string> {
    return (await this.call("getConsole", { params: { id: vm }, query: { max_bytes: maxBytes } })).text();
  }

  /** createPreview: a public preview token of one port; url is the preview host, token_url opens it in a browser (token is the secret, shown this once). */
  createPreview(vm: string, port: number, opts: { ttlSeconds?: number } = {}): Promise<Preview> {
    return this.json("createPreview", { params: { id: vm }, json: { port, ttl_seconds: opts.ttlSeconds ?? 0 } });
  }

  /** listPreviews: the sandbox's preview tokens, without secrets. */
  async listPreviews(vm: string): Promise<Preview[]> {
    return (await this.json<{ previews: Preview[] }>("listPreviews", { params: { id: vm } })).previews ?? [];
  }

  /** revokePreview. */
  async revokePreview(vm: string, id: string): Promise<void> {
    await (await this.call("revokePreview", { params: { id: vm, token: id } })).body?.cancel();
  }

  // --- commands

  /**
   * exec: starts a command (a shell line when args is absent) and returns
   * its ExecStream once the server answered. stdin: see Stdin.
   */
  async execStream(vm: string, req: Exec, opts: { stdin?: Stdin; signal?: AbortSignal } = {}): Promise<ExecStream> {
    const abort = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, abort.signal]) : abort.signal;
    if (opts.stdin === undefined || opts.stdin === false) {
      const resp = await this.call("exec", { params: { id: vm }, json: req, timeout: false, signal });
      return new ExecStream(resp.body!.pipeThrough(ndjsonEvents(), { signal }), abort);
    }
    const sb = stdinBody(JSON.stringify(req), opts.stdin === true ? undefined : opts.stdin);
    const pending = this.call("exec", {
      params: { id: vm }, query: { stdin: true }, raw: sb.body, contentType: "application/json", timeout: false, signal,
    });
    const events = ndjsonEvents();
    const piped = pending.then((resp) => resp.body!.pipeTo(events.writable, { signal }));
    piped.catch((e) => {
      sb.writer?.abort(e).catch(() => {});
      events.writable.abort(e).catch(() => {});
    });
    if (opts.stdin !== true) await pending;
    // With stdin: true the server answers with the command's first output,
    // which may wait for what the caller writes after this returns: errors
    // (NotFoundError, ...) then surface from the events.
    return new ExecStream(events.readable, abort, sb.writer);
  }

  /** exec to the end: output goes to the callbacks as it comes and is kept
   * in the result. A non-zero exit is a result, not an error. Interactive
   * stdin (true) needs execStream. */
  async exec(vm: string, req: Exec, opts: {
    stdin?: Stdin; onStdout?: (b: Uint8Array) => void; onStderr?: (b: Uint8Array) => void; maxOutput?: number;
    signal?: AbortSignal;
  } = {}): Promise<ExecResult> {
    if (opts.stdin === true) throw new AetheriumError("stdin: true is for execStream(), which can write() to it");
    const s = await this.execStream(vm, req, opts);
    return s.result(opts);
  }

  /** submitExecute: queue a command (async); its task's result holds the output. */
  submitExecute(vm: string, req: Exec): Promise<Accepted> {
    return this.json("submitExecute", { params: { id: vm }, json: req });
  }

  /** listExecutions, every page, oldest first. */
  listExecutions(vm: string): Promise<Execution[]> {
    return this.pages<Execution>("listExecutions", "executions", { params: { id: vm } });
  }

  /** createJob: commands run in order in one sandbox (async). */
  createJob(vm: string, commands: string[]): Promise<Accepted> {
    return this.json("createJob", { json: { vm_id: vm, commands } });
  }

  /** getJob: the job and its executions. */
  getJob(id: string): Promise<{ job: Job; executions: Execution[] }> { return this.json("getJob", { params: { id } }); }

  // --- background processes

  /** exec with background: starts the command and returns its PID at once. */
  async startProcess(vm: string, req: Exec): Promise<number> {
    const r = await this.json<{ pid: number }>("exec", { params: { id: vm }, json: { ...req, background: true, keep_running: undefined } });
    return r.pid;
  }

  /** listProcesses: the processes started with background or keep_running (at most 256). */
  async processes(vm: string): Promise<Process[]> {
    return (await this.json<{ processes: Process[] }>("listProcesses", { params: { id: vm } })).processes ?? [];
  }

  /** signalProcess: signal ("TERM", "KILL", ...) to a process started through Aetherium that still runs. */
  async signalProcess(vm: string, pid: number, signal = "TERM"): Promise<void> {
    await (await this.call("signalProcess", { params: { id: vm, pid: String(pid) }, json: { signal } })).body?.cancel();
  }

  /**
   * processOutput: the output the sandbox kept (the last 1 MiB) and, with
   * follow, what follows until the process exits. exit is null when the
   * process still runs (without follow); dropped counts the bytes the
   * sandbox no longer held. Abandoning the read never stops the process.
   */
  async processOutput(vm: string, pid: number, opts: { follow?: boolean; signal?: AbortSignal } = {}): Promise<{
    stdout: string; stderr: string; exit: ExecEvent | null; dropped: number;
  }> {
    const resp = await this.call("processOutput", {
      params: { id: vm, pid: String(pid) }, query: { follow: opts.follow ? 1 : undefined }, timeout: false, signal: opts.signal,
    });
    const dropped = Number(resp.headers.get("X-Output-Dropped") ?? 0);
    const out: Uint8Array[] = [], err: Uint8Array[] = [];
    let exit: ExecEvent | null = null;
    for await (const ev of resp.body!.pipeThrough(ndjsonEvents()) as unknown as AsyncIterable<ExecEvent>) {
      if (ev.type === "exit") exit = ev;
      else (ev.type === "stdout" ? out : err).push(ev.data);
    }
    return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), exit, dropped };
  }

  // --- files

  /** writeFile: data to path in the sandbox; mode like 0o755. */
  writeFile(vm: string, path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<{ path: string; size: number }> {
    const raw = typeof data === "string" ? new TextEncoder().encode(data) : data;
    return this.json("writeFile", {
      params: { id: vm }, query: { path, mode: opts.mode?.toString(8) }, raw, contentType: "application/octet-stream",
      timeout: false,
    });
  }

  /** readFile: the whole file; a transfer cut short throws instead of returning part of it. */
  async readFile(vm: string, path: string, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
    const max = opts.maxBytes ?? 1 << 30;
    const resp = await this.call("readFile", { params: { id: vm }, query: { path }, timeout: false });
    const size = Number(resp.headers.get("Content-Length") ?? -1);
    if (size > max) {
      await resp.body?.cancel();
      throw new AetheriumError(`${path} is ${size} bytes, more than maxBytes ${max}`, { code: "too_large" });
    }
    let data: Uint8Array;
    try {
      data = await readAtMost(resp, max + 1);
    } catch (e) {
      throw new TransportError(`download of ${path} broke: ${(e as Error).message}`, { cause: e });
    }
    if (data.length > max) throw new AetheriumError(`${path} is more than maxBytes ${max}`, { code: "too_large" });
    if (size >= 0 && data.length !== size) throw new TransportError(`download of ${path} ended after ${data.length} of ${size} bytes`);
    return data;
  }

  /** listDirectory: entries as lstat sees them (symlinks not followed), at most 10,000. */
  listDir(vm: string, path: string): Promise<DirListing> {
    return this.json("listDirectory", { params: { id: vm }, query: { path } });
  }

  /**
   * watchDirectory: changes under path from now on (recursive: in its
   * subdirectories too). It is watching when the promise resolves; iterate
   * it with for await, and close() it to stop.
   */
  async watchDir(vm: string, path: string, opts: { recursive?: boolean } = {}): Promise<EventStream<FileEvent>> {
    const abort = new AbortController();
    const resp = await this.call("watchDirectory", {
      params: { id: vm }, query: { path, recursive: opts.recursive ? 1 : undefined }, timeout: false, signal: abort.signal,
    });
    return new EventStream<FileEvent>(resp.body!, abort);
  }

  // --- tasks and events

  /** getTask; waitMs long-polls up to that long (at most 60s) for it to finish. */
  getTask(id: string, opts: { waitMs?: number } = {}): Promise<Task> {
    const wait = opts.waitMs ? `${Math.ceil(opts.waitMs)}ms` : undefined;
    return this.json("getTask", { params: { id }, query: { wait }, timeout: (opts.waitMs ?? 0) + this.timeoutMs });
  }

  /** waitTask long-polls until the task succeeded (returns it) or failed
   * (throws TaskFailedError); timeoutMs undefined waits for ever. */
  async waitTask(id: string, opts: { timeoutMs?: number } = {}): Promise<Task> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    for (;;) {
      const left = Math.min(30_000, deadline - Date.now());
      if (left <= 0) throw new AetheriumError(`task ${id} did not finish within ${opts.timeoutMs}ms`, { code: "timeout" });
      const t = await this.getTask(id, { waitMs: Math.max(left, 100) });
      if (t.status === "succeeded") return t;
      if (t.status === "failed") throw new TaskFailedError(t);
    }
  }

  /** listTasks: one page, newest first. */
  listTasks(opts: { status?: string; limit?: number; cursor?: string } = {}): Promise<{ tasks: Task[]; next?: string }> {
    return this.json("listTasks", { query: opts });
  }

  /**
   * streamEvents: state changes from now on. It is subscribed when the
   * promise resolves; iterate it with for await, and close() it to stop.
   */
  async events(filter: { kind?: "task" | "vm"; vm?: string; taskId?: string } = {}): Promise<EventStream> {
    const abort = new AbortController();
    const resp = await this.call("streamEvents", {
      query: { kind: filter.kind, vm_id: filter.vm, task_id: filter.taskId }, timeout: false, signal: abort.signal,
    });
    return new EventStream(resp.body!, abort);
  }

  // --- templates and images

  /** createTemplate; with wait (default) returns the ready template (a cache hit at once). */
  async createTemplate(req: CreateTemplate, opts: { wait?: boolean; waitTimeoutMs?: number } = {}): Promise<Template> {
    const acc = await this.json<{ task_id?: string; cached: boolean; template?: Template }>("createTemplate", { json: req });
    if (opts.wait === false) return acc as unknown as Template;
    if (acc.task_id) await this.waitTask(acc.task_id, { timeoutMs: opts.waitTimeoutMs ?? 600_000 });
    return this.getTemplate(req.name);
  }

  /** listTemplates, by name. */
  async listTemplates(): Promise<Template[]> {
    return (await this.json<{ templates: Template[] }>("listTemplates")).templates ?? [];
  }

  /** getTemplate by name or ID. */
  getTemplate(name: string): Promise<Template> { return this.json("getTemplate", { params: { name } }); }

  /** deleteTemplate and its image; with wait (default) returns the finished task. */
  async deleteTemplate(name: string, opts: { wait?: boolean } = {}): Promise<Task | Accepted> {
    const acc = await this.json<Accepted>("deleteTemplate", { params: { name } });
    return opts.wait === false ? acc : this.waitTask(acc.task_id, { timeoutMs: 120_000 });
  }

  /** setTemplatePool: keep size started sandboxes ready. */
  setTemplatePool(name: string, size: number): Promise<Template> {
    return this.json("setTemplatePool", { params: { name }, json: { size } });
  }

  /** buildImage (admin, async). */
  buildImage(spec: { ref?: string; suite?: string; include?: string[]; mirror?: string; force?: boolean },
    opts: { worker?: string } = {}): Promise<Accepted> {
    return this.json("buildImage", { query: { worker: opts.worker }, json: spec });
  }

  // --- administration (admin keys)

  /** createProject. */
  createProject(name: string, quota: Quota = {}): Promise<Project> { return this.json("createProject", { json: { name, quota } }); }

  /** listProjects. */
  async listProjects(): Promise<Project[]> { return (await this.json<{ projects: Project[] }>("listProjects")).projects ?? []; }

  /** getProject by ID or name. */
  getProject(id: string): Promise<Project> { return this.json("getProject", { params: { id } }); }

  /** setProjectQuota. */
  setProjectQuota(id: string, quota: Quota): Promise<Project> { return this.json("setProjectQuota", { params: { id }, json: quota }); }

  /** deleteProject. */
  async deleteProject(id: string): Promise<void> { await (await this.call("deleteProject", { params: { id } })).body?.cancel(); }

  /** createKey: the answer's key is the secret, shown this once. */
  createKey(req: { project?: string; role?: "admin" | "member"; name?: string; ttl_seconds?: number } = {}): Promise<{ id: string; key: string; role: string; prefix: string }> {
    return this.json("createKey", { json: req });
  }

  /** listKeys. */
  async listKeys(opts: { project?: string } = {}): Promise<Array<Record<string, unknown>>> {
    return (await this.json<{ keys: Array<Record<string, unknown>> }>("listKeys", { query: opts })).keys ?? [];
  }

  /** revokeKey. */
  revokeKey(id: string): Promise<Record<string, unknown>> { return this.json("revokeKey", { params: { id } }); }

  /** listAudit: one page; next is the before= of the following one. */
  listAudit(opts: { limit?: number; before?: number; project?: string } = {}): Promise<{ entries: Array<Record<string, unknown>>; next?: number }> {
    return this.json("listAudit", { query: opts });
  }

  /** listWorkers: the hosts that run sandboxes. */
  async listWorkers(): Promise<Array<Record<string, unknown>>> {
    return (await this.json<{ workers: Array<Record<string, unknown>> }>("listWorkers")).workers ?? [];
  }

  /** queryLogs. */
  queryLogs(q: LogQuery = {}): Promise<LogPage> { return this.json("queryLogs", { json: q }); }

  /** streamLogs: the log stream's WebSocket URL (Node 22+ has a global WebSocket; send the key as a Bearer header or use a library). */
  logStreamUrl(q: { vm_id?: string; task_id?: string; execution_id?: string; stream?: string; level?: string; contains?: string; since?: string; tail?: number } = {}): string {
    return this.url("streamLogs", { query: q }).replace(/^http/, "ws");
  }
}

/** EventStream is an open Server-Sent Events stream (GET /api/v1/events, a directory watch); iterate it with for await. */
export class EventStream<T = AetherEvent> implements AsyncIterable<T> {
  private readonly body: ReadableStream<Uint8Array>;
  private readonly abort: AbortController;

  constructor(body: ReadableStream<Uint8Array>, abort: AbortController) {
    this.body = body;
    this.abort = abort;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    const dec = new TextDecoder();
    let buf = "";
    let data: string[] = [];
    try {
      for await (const chunk of this.body as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          if (line.startsWith("data:")) {
            data.push(line.slice(5).replace(/^ /, ""));
          } else if (line === "" && data.length) {
            yield JSON.parse(data.join("\n")) as T;
            data = [];
          }
        }
        if (buf.length > MAX_SSE_LINE) throw new TransportError(`event line longer than ${MAX_SSE_LINE} bytes`);
      }
    } catch (e) {
      if (this.abort.signal.aborted) return;
      throw e instanceof AetheriumError ? e : new TransportError(`event stream broken: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Unsubscribes. */
  close(): void { this.abort.abort(); }
}

function retryable(method: string, e: AetheriumError): boolean {
  if (e.status === 429) return e.code === "rate_limited";
  if (e.status === 503 || (e.status === 0 && e instanceof TransportError)) return IDEMPOTENT.has(method);
  return false;
}

async function errorOf(resp: Response): Promise<AetheriumError> {
  let raw = "";
  try {
    raw = new TextDecoder().decode((await readAtMost(resp, MAX_ERROR_BODY)));
  } catch {
    // the body broke; the status still says what happened
  }
  let code = "http", message = `${resp.status} ${resp.statusText}: ${raw.slice(0, 200).trim()}`;
  try {
    const d = JSON.parse(raw).error;
    if (d && typeof d.code === "string" && typeof d.message === "string") ({ code, message } = d);
  } catch {
    // not JSON: keep the status line
  }
  const ra = Number(resp.headers.get("Retry-After") ?? NaN);
  return errorFor(resp.status, code, message, Number.isFinite(ra) ? Math.max(ra, 0) : undefined);
}

async function readAtMost(resp: Response, max: number): Promise<Uint8Array> {
  if (!resp.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of resp.body as unknown as AsyncIterable<Uint8Array>) {
    parts.push(c);
    n += c.length;
    if (n >= max) break;
  }
  const all = Buffer.concat(parts);
  return new Uint8Array(all.buffer, all.byteOffset, Math.min(all.length, max));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
