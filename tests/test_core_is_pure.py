"""The sans-I/O core must not pull in an event loop, a transport or a socket."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "asyncio",
    "aioquic",
    "qh3",
    "nats",
    "redis",
    "uvloop",
    "socket",
    "_socket",
    "ssl",
    "selectors",
    "http.client",
    "urllib.request",
)

# Import the package and every module under it, then report the forbidden modules loaded.
PROBE = """
import importlib, json, pkgutil, sys
PRELOAD
import imaccess.protocol as pkg
names = sorted(
    m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
)
for name in names:
    importlib.import_module(name)
forbidden = FORBIDDEN
loaded = sorted(
    m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden)
)
print(json.dumps({"imported": names, "loaded": loaded}))
"""


def _probe(preload: str = "") -> dict[str, list[str]]:
    code = PROBE.replace("PRELOAD", preload).replace("FORBIDDEN", repr(FORBIDDEN))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_protocol_imports_no_io_modules() -> None:
    report = _probe()
    for module in (
        "imaccess.protocol.codec",
        "imaccess.protocol.framing",
        "imaccess.protocol.session",
    ):
        assert module in report["imported"]
    assert report["loaded"] == []


def test_probe_detects_a_forbidden_import() -> None:
    """The check above can fail: the same probe sees asyncio when something imports it."""
    report = _probe("import asyncio")
    assert "asyncio" in report["loaded"]
