// Aetherium's TypeScript/JavaScript SDK (Node 20+): sandboxes, streaming
// exec, files, templates and events over the REST API v1.
//
//   import { Sandbox } from "@aetherium/sdk";
//   const sb = await Sandbox.create();
//   console.log((await sb.exec("echo hello")).stdout);
//   await sb.close();

export * from "./client.js";
export * from "./errors.js";
export * from "./exec.js";
export * from "./sandbox.js";
export type * from "./types.js";
