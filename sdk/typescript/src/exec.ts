// Streaming exec: POST /api/v1/vms/{id}/exec as a ReadableStream of events.

import { AetheriumError, TransportError, errorFor } from "./errors.js";

/** MAX_EVENT_LINE bounds one NDJSON line of the stream (as the Go client). */
export const MAX_EVENT_LINE = 4 << 20;

/** One event: output as it comes, then exactly one exit. */
export type ExecEvent =
  | { type: "stdout" | "stderr"; data: Uint8Array }
  | {
    type: "exit";
    exit_code: number | null;
    signal: string;
    timed_out: boolean;
    duration_ms: number;
    execution_id: string;
  };

/** How a command ended and what it wrote (each stream kept up to maxOutput bytes). */
export interface ExecResult {
  exitCode: number | null;
  signal: string;
  timedOut: boolean;
  durationMs: number;
  executionId: string;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

/**
 * Stdin is what a command reads: a string or bytes (sent, then closed), a
 * ReadableStream or (async) iterable of bytes (pumped until it ends), or
 * true: write it yourself with ExecStream.write() and closeStdin().
 */
export type Stdin = string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | boolean;

/** Splits a byte stream into NDJSON events, bounding each line. */
export function ndjsonEvents(): TransformStream<Uint8Array, ExecEvent> {
  let buf: Uint8Array = new Uint8Array(0);
  const dec = new TextDecoder();
  return new TransformStream<Uint8Array, ExecEvent>({
    transform(chunk, ctrl) {
      buf = concat(buf, chunk);
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
        const line = buf.subarray(0, nl);
        buf = buf.slice(nl + 1);
        if (line.length > 0) {
          const ev = parseEvent(dec.decode(line));
          if (ev) ctrl.enqueue(ev);
        }
      }
      if (buf.length > MAX_EVENT_LINE) throw new TransportError(`exec event longer than ${MAX_EVENT_LINE} bytes`);
    },
    flush() {
      if (buf.length > 0) throw new TransportError("exec stream ended mid-event");
    },
  });
}

function parseEvent(line: string): ExecEvent | undefined {
  let d: any;
  try {
    d = JSON.parse(line);
  } catch (e) {
    throw new TransportError(`bad exec event: ${(e as Error).message}`);
  }
  switch (d.type) {
    case "stdout":
    case "stderr":
      return { type: d.type, data: new Uint8Array(Buffer.from(d.data ?? "", "base64")) };
    case "exit":
      return {
        type: "exit", exit_code: d.exit_code ?? null, signal: d.signal ?? "", timed_out: !!d.timed_out,
        duration_ms: d.duration_ms ?? 0, execution_id: d.execution_id ?? "",
      };
    case "error":
      throw errorFor(200, d.error?.code ?? "internal", d.error?.message ?? "exec failed");
  }
  return undefined; // an event type this SDK does not know yet
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The request body of an exec with stdin: the JSON line, then stdin's bytes. */
export function stdinBody(line: string, stdin: Exclude<Stdin, boolean> | undefined): {
  body: ReadableStream<Uint8Array>; writer?: WritableStreamDefaultWriter<Uint8Array>;
} {
  const head = new TextEncoder().encode(line + "\n");
  if (stdin === undefined) {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    writer.write(head).catch(() => {});
    return { body: readable, writer };
  }
  const src = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  return {
    body: new ReadableStream<Uint8Array>({
      async start(ctrl) {
        ctrl.enqueue(head);
        try {
          if (src instanceof Uint8Array) {
            ctrl.enqueue(src);
          } else if (src instanceof ReadableStream) {
            for await (const c of src as unknown as AsyncIterable<Uint8Array>) ctrl.enqueue(c);
          } else {
            for await (const c of src as AsyncIterable<Uint8Array>) ctrl.enqueue(c);
          }
          ctrl.close();
        } catch (e) {
          ctrl.error(e);
        }
      },
    }),
  };
}

/**
 * ExecStream is a running command. events is a ReadableStream of its
 * events (also iterable with for await); result() reads it to the end.
 * With stdin: true, write() and closeStdin() feed the command while it
 * runs (the request body streams in full duplex). cancel() abandons it.
 */
export class ExecStream implements AsyncIterable<ExecEvent> {
  readonly events: ReadableStream<ExecEvent>;
  private readonly writer?: WritableStreamDefaultWriter<Uint8Array>;
  private readonly abort: AbortController;

  constructor(events: ReadableStream<ExecEvent>, abort: AbortController, writer?: WritableStreamDefaultWriter<Uint8Array>) {
    this.events = events;
    this.abort = abort;
    this.writer = writer;
  }

  /** Writes to the command's stdin (stdin: true only). */
  async write(data: string | Uint8Array): Promise<void> {
    if (!this.writer) throw new AetheriumError("write() needs exec with stdin: true");
    await this.writer.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** Ends the command's stdin (stdin: true only); idempotent. */
  async closeStdin(): Promise<void> {
    await this.writer?.close().catch(() => {});
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ExecEvent> {
    const reader = this.events.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new TransportError("exec stream ended without an exit event");
        yield value;
        if (value.type === "exit") return;
      }
    } finally {
      reader.releaseLock();
    }
  }

  /** Reads the rest of the stream, passing output to the callbacks as it
   * arrives, and returns how the command ended. */
  async result(opts: { onStdout?: (b: Uint8Array) => void; onStderr?: (b: Uint8Array) => void; maxOutput?: number } = {}): Promise<ExecResult> {
    const max = opts.maxOutput ?? 16 << 20;
    const out: Uint8Array[] = [], err: Uint8Array[] = [];
    const size = { stdout: 0, stderr: 0 }, cut = { stdout: false, stderr: false };
    try {
      for await (const ev of this) {
        if (ev.type === "exit") {
          await this.closeStdin();
          const so = Buffer.concat(out), se = Buffer.concat(err);
          return {
            exitCode: ev.exit_code, signal: ev.signal, timedOut: ev.timed_out, durationMs: ev.duration_ms,
            executionId: ev.execution_id, stdout: so.toString("utf8"), stderr: se.toString("utf8"),
            stdoutBytes: new Uint8Array(so), stderrBytes: new Uint8Array(se),
            stdoutTruncated: cut.stdout, stderrTruncated: cut.stderr,
          };
        }
        (ev.type === "stdout" ? opts.onStdout : opts.onStderr)?.(ev.data);
        const room = max - size[ev.type];
        if (ev.data.length > room) cut[ev.type] = true;
        const kept = ev.data.subarray(0, Math.max(room, 0));
        size[ev.type] += kept.length;
        (ev.type === "stdout" ? out : err).push(kept);
      }
    } catch (e) {
      this.cancel();
      throw e;
    }
    throw new TransportError("exec stream ended without an exit event");
  }

  /** Abandons the command's stream (the server then cancels the command). */
  cancel(): void {
    this.abort.abort();
  }
}
