"""Times exec round trips (`true` in a running sandbox, output read to its
exit event) through the SDK and through raw http.client on one kept-alive
connection, interleaved in the same run. Prints one JSON line (ms).

    AETHER_URL=... AETHER_API_KEY=... python3 sdk/python/bench/exec_roundtrip.py [N]
"""

import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aetherium import Client, Sandbox  # noqa: E402


def raw_exec(conn: http.client.HTTPConnection, path: str, headers: dict) -> None:
    conn.request("POST", path, body=b'{"command":"true"}', headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200 or b'"exit"' not in body:
        raise SystemExit(f"raw exec: {resp.status} {body[:200]!r}")


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50_ms": round(statistics.median(xs), 3), "p99_ms": round(xs[int(len(xs) * 0.99) - 1], 3),
            "mean_ms": round(statistics.fmean(xs), 3)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    client = Client()
    u = urllib.parse.urlsplit(os.environ["AETHER_URL"])
    with Sandbox.create(client=client, name="bench-py") as sb:
        conn = http.client.HTTPConnection(u.hostname, u.port)
        headers = {"Authorization": "Bearer " + os.environ["AETHER_API_KEY"], "Content-Type": "application/json"}
        path = f"/api/v1/vms/{sb.id}/exec"
        for _ in range(10):  # warm both paths
            raw_exec(conn, path, headers)
            sb.exec("true")
        sdk, raw = [], []
        for _ in range(n):
            t = time.perf_counter()
            if sb.exec("true").exit_code != 0:
                raise SystemExit("sdk exec failed")
            sdk.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            raw_exec(conn, path, headers)
            raw.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"lang": "python", "n": n, "sdk": summary(sdk), "raw": summary(raw)}))


if __name__ == "__main__":
    main()
