"""Keeps the SDK in step with the API without a server: every operation of
internal/api/openapi.json has a client method (OPERATIONS, both ways), and
every error code internal/api/errors.go writes has its own exception."""

import json
import re
from pathlib import Path

import aetherium
from aetherium.errors import AetheriumError, error_for

ROOT = Path(__file__).resolve().parents[3]


def test_operations_match_openapi():
    doc = json.loads((ROOT / "internal/api/openapi.json").read_text())
    served = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                served[op["operationId"]] = (method.upper(), path)
    ours = dict(aetherium.OPERATIONS)
    missing = sorted(set(served) - set(ours) - set(aetherium.NOT_COVERED))
    assert not missing, f"operations in openapi.json the Python SDK lacks: {missing}"
    stale = sorted(set(ours) - set(served))
    assert not stale, f"operations the Python SDK has that openapi.json does not: {stale}"
    gone = sorted(set(aetherium.NOT_COVERED) - set(served))
    assert not gone, f"NOT_COVERED names operations openapi.json no longer has: {gone}"
    wrong = {k: (ours[k], served[k]) for k in ours if ours[k] != served[k]}
    assert not wrong, f"method/path differ (ours, openapi.json): {wrong}"


def test_every_client_method_names_a_known_operation():
    src = (Path(aetherium.__file__).parent / "client.py").read_text()
    used = set(re.findall(r'self\._(?:json|call|pages)\(\s*"(\w+)"', src))
    used.add("exec")  # ExecStream sends it
    assert used == set(aetherium.OPERATIONS), f"unused {set(aetherium.OPERATIONS) - used}, unknown {used - set(aetherium.OPERATIONS)}"


def test_every_api_error_code_has_its_exception():
    src = (ROOT / "internal/api/errors.go").read_text()
    codes = re.findall(r'http\.Status\w+, "(\w+)"', src)
    assert len(codes) >= 15, codes
    for code in codes:
        err = error_for(418, code, "m")
        assert type(err) is not AetheriumError, f"API error code {code!r} has no exception class"
        assert err.code == code


def test_wire_types_have_the_fields_of_their_schemas():
    from aetherium import types

    doc = json.loads((ROOT / "internal/api/openapi.json").read_text())
    for name in ("VM", "Accepted", "Task", "Execution", "Job", "Template", "Event", "Project", "Quota", "LogRecord",
                 "LogPage"):
        ours = set(getattr(types, name).__annotations__)
        assert ours == set(doc["components"]["schemas"][name]["properties"]), f"aetherium.types.{name}"
