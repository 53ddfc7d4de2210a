// The session API: Sandbox.create(...), sb.exec(...), sb.files, sb.close().

import { randomBytes } from "node:crypto";

import { Client } from "./client.js";
import { NotFoundError } from "./errors.js";
import type { ExecResult, ExecStream, Stdin } from "./exec.js";
import type { CreateVM, Exec, VM } from "./types.js";

/** ExecOptions are a command's options besides the command itself. */
export type ExecOptions = Omit<Exec, "command" | "args"> & {
  stdin?: Stdin;
  onStdout?: (b: Uint8Array) => void;
  onStderr?: (b: Uint8Array) => void;
  maxOutput?: number;
  signal?: AbortSignal;
};

/** A sandbox's files. */
export class Files {
  constructor(private readonly sb: Sandbox) {}

  /** Writes data to path (absolute, in the sandbox); returns its size. */
  async write(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<number> {
    return (await this.sb.client.writeFile(this.sb.id, path, data, opts)).size;
  }

  /** The contents of path. */
  read(path: string, opts: { maxBytes?: number } = {}): Promise<Uint8Array> {
    return this.sb.client.readFile(this.sb.id, path, opts);
  }

  /** The contents of path as UTF-8 text. */
  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.read(path));
  }
}

/**
 * Sandbox is one sandbox, created or connected to. close() deletes it;
 * `await using sb = await Sandbox.create()` does so at the end of the block.
 */
export class Sandbox {
  readonly client: Client;
  info: VM;
  readonly files: Files;

  constructor(client: Client, info: VM) {
    this.client = client;
    this.info = info;
    this.files = new Files(this);
  }

  /**
   * create makes a sandbox from template (else the server's default
   * image) and waits until it runs. name defaults to "sb-" and random hex;
   * timeout expires it that many seconds after creation; the other fields
   * are createSandbox's. client defaults to new Client() (AETHER_URL,
   * AETHER_API_KEY).
   */
  static async create(opts: Partial<CreateVM> & { timeout?: number; client?: Client } = {}): Promise<Sandbox> {
    const { client: c0, timeout, ...fields } = opts;
    const client = c0 ?? new Client();
    const req: CreateVM = { ...fields, name: fields.name ?? "sb-" + randomBytes(4).toString("hex") };
    if (timeout !== undefined) req.timeout_seconds = timeout;
    return new Sandbox(client, await client.createSandbox(req));
  }

  /** connect returns the existing sandbox vm (ID or name). */
  static async connect(vm: string, opts: { client?: Client } = {}): Promise<Sandbox> {
    const client = opts.client ?? new Client();
    return new Sandbox(client, await client.getSandbox(vm));
  }

  get id(): string { return this.info.id; }
  get name(): string { return this.info.name; }

  /** Reloads and returns info. */
  async refresh(): Promise<VM> {
    this.info = await this.client.getSandbox(this.id);
    return this.info;
  }

  /** Runs command (a shell line when args is absent) to its end. */
  exec(command: string, args?: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const { stdin, onStdout, onStderr, maxOutput, signal, ...req } = opts;
    return this.client.exec(this.id, { command, args, ...req }, { stdin, onStdout, onStderr, maxOutput, signal });
  }

  /** Starts command and returns its stream of events. */
  execStream(command: string, args?: string[], opts: ExecOptions = {}): Promise<ExecStream> {
    const { stdin, signal, onStdout: _o, onStderr: _e, maxOutput: _m, ...req } = opts;
    return this.client.execStream(this.id, { command, args, ...req }, { stdin, signal });
  }

  /** Expires the sandbox seconds from now (0 never). */
  async setTimeout(seconds: number): Promise<void> {
    this.info = await this.client.setSandboxTimeout(this.id, seconds);
  }

  /** Deletes the sandbox and waits for it to be gone; idempotent. */
  async close(): Promise<void> {
    try {
      await this.client.deleteSandbox(this.id);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
