// Creates a sandbox, runs commands in it, moves a file, deletes it.
//   cd sdk/typescript && npm ci && npm run build && node examples/quickstart.mjs
import { Sandbox } from "../dist/index.js";

const sb = await Sandbox.create({ timeout: 600 });
try {
  console.log("sandbox", sb.name, sb.info.status);
  process.stdout.write((await sb.exec("echo hello from $(hostname)")).stdout);
  await sb.files.write("/tmp/greeting.txt", "hi\n");
  process.stdout.write((await sb.exec("tr a-z A-Z < /tmp/greeting.txt")).stdout);
  process.stdout.write((await sb.exec("cat", undefined, { stdin: "piped through stdin\n" })).stdout);
  console.log("exit", (await sb.exec("exit 7")).exitCode);
} finally {
  await sb.close();
}
