// Times exec round trips (`true` in a running sandbox, output read to its
// exit event) through the SDK and through raw fetch, interleaved in the same
// run (both on Node's fetch keep-alive pool). Prints one JSON line (ms).
//   AETHER_URL=... AETHER_API_KEY=... node sdk/typescript/bench/exec_roundtrip.mjs [N]
import { Client, Sandbox } from "../dist/index.js";

const n = Number(process.argv[2] ?? 200);
const client = new Client();
const sb = await Sandbox.create({ client, name: "bench-ts" });
const url = `${process.env.AETHER_URL}/api/v1/vms/${sb.id}/exec`;
const headers = { Authorization: `Bearer ${process.env.AETHER_API_KEY}`, "Content-Type": "application/json" };

async function raw() {
  const resp = await fetch(url, { method: "POST", headers, body: '{"command":"true"}' });
  const body = await resp.text();
  if (resp.status !== 200 || !body.includes('"exit"')) throw new Error(`raw exec: ${resp.status} ${body.slice(0, 200)}`);
}

function summary(xs) {
  xs.sort((a, b) => a - b);
  const r = (x) => Math.round(x * 1000) / 1000;
  return { p50_ms: r(xs[Math.floor(xs.length / 2)]), p99_ms: r(xs[Math.ceil(xs.length * 0.99) - 1]),
    mean_ms: r(xs.reduce((a, b) => a + b, 0) / xs.length) };
}

try {
  for (let i = 0; i < 10; i++) { await raw(); await sb.exec("true"); }
  const sdk = [], rawT = [];
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    if ((await sb.exec("true")).exitCode !== 0) throw new Error("sdk exec failed");
    sdk.push(performance.now() - t);
    t = performance.now();
    await raw();
    rawT.push(performance.now() - t);
  }
  console.log(JSON.stringify({ lang: "typescript", n, sdk: summary(sdk), raw: summary(rawT) }));
} finally {
  await sb.close();
}
