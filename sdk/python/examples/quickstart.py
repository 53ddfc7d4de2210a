"""Creates a sandbox, runs commands in it, moves a file, deletes it.

    AETHER_URL=http://127.0.0.1:8080 python3 sdk/python/examples/quickstart.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aetherium import Sandbox  # noqa: E402

with Sandbox.create(timeout=600) as sb:
    print("sandbox", sb.name, sb.info["status"])
    print(sb.exec("echo hello from $(hostname)").stdout, end="")
    sb.files.write("/tmp/greeting.txt", "hi\n")
    print(sb.exec("tr a-z A-Z < /tmp/greeting.txt").stdout, end="")
    r = sb.exec("cat", stdin=b"piped through stdin\n", on_stderr=lambda b: sys.stderr.buffer.write(b))
    print(r.stdout, end="")
    print("exit", sb.exec("exit 7").exit_code)
