// Keeps the SDK in step with the API without a server: every operation of
// internal/api/openapi.json has a client method (OPERATIONS, both ways),
// the wire types have the schemas' fields, and every error code
// internal/api/errors.go writes has its own error class.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { AetheriumError, NOT_COVERED, OPERATIONS, errorFor } from "../dist/index.js";

const root = new URL("../../../", import.meta.url);
const doc = JSON.parse(readFileSync(new URL("internal/api/openapi.json", root), "utf8"));
const src = (f) => readFileSync(new URL(`../src/${f}`, import.meta.url), "utf8");

test("OPERATIONS matches openapi.json both ways", () => {
  const served = {};
  const all = new Set(Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId)));
  for (const op of Object.keys(NOT_COVERED)) assert.ok(all.has(op), `NOT_COVERED names ${op}, which openapi.json no longer has`);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (["get", "put", "post", "delete", "patch"].includes(method) && !(op.operationId in NOT_COVERED)) {
        served[op.operationId] = [method.toUpperCase(), path];
      }
    }
  }
  assert.deepEqual(Object.fromEntries(Object.entries(OPERATIONS).map(([k, v]) => [k, [...v]])), served);
});

test("every operation has a client method", () => {
  const used = new Set([...src("client.ts").matchAll(/this\.(?:json|call|pages|url)\b[^(]*\(\s*"(\w+)"/g)].map((m) => m[1]));
  assert.deepEqual([...used].sort(), Object.keys(OPERATIONS).sort());
});

test("wire types have the fields of their schemas", () => {
  const types = src("types.ts");
  const names = { VM: "VM", CreateVM: "CreateVM", Exec: "Exec", Accepted: "Accepted", Task: "Task", Execution: "Execution",
    Job: "Job", Template: "Template", CreateTemplate: "CreateTemplate", AetherEvent: "Event", Quota: "Quota",
    Project: "Project", LogRecord: "LogRecord", LogQuery: "LogQuery", LogPage: "LogPage" };
  for (const [ts, schema] of Object.entries(names)) {
    const body = types.match(new RegExp(`export interface ${ts} \\{([^}]*)\\}`))?.[1];
    assert.ok(body, `interface ${ts} not found in src/types.ts`);
    const fields = [...body.matchAll(/^\s+(\w+)\??:/gm)].map((m) => m[1]).sort();
    assert.deepEqual(fields, Object.keys(doc.components.schemas[schema].properties).sort(), `${ts} vs schema ${schema}`);
  }
});

test("every API error code has its error class", () => {
  const codes = [...readFileSync(new URL("internal/api/errors.go", root), "utf8").matchAll(/http\.Status\w+, "(\w+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 15, String(codes));
  for (const code of codes) {
    const err = errorFor(418, code, "m");
    assert.notEqual(err.constructor, AetheriumError, `API error code ${code} has no error class`);
    assert.equal(err.code, code);
  }
});
