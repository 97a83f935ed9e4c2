"""A client written from PROTOCOL.md and the schema alone (examples/independent_client,
which does not import imaccess) chats through the embedded gateway."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from imaccess.embedded import EmbeddedGateway

from .conftest import token_for

CLIENT = Path(__file__).resolve().parent.parent / "examples" / "independent_client" / "client.py"


async def _run_client(gateway: EmbeddedGateway, user: int, *args: str) -> tuple[int, list[str]]:
    host, port = gateway.address
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        "--host",
        host,
        "--port",
        str(port),
        "--ca",
        gateway.cert_file,
        "--token",
        token_for(gateway.settings, user),
        "--device-id",
        f"independent-{user}",
        "--timeout",
        "20",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines()


async def test_independent_clients_chat(gateway: EmbeddedGateway) -> None:
    one = asyncio.create_task(
        _run_client(gateway, 1, "--send-to", "2", "--text", "hello from 1", "--expect", "1")
    )
    two = asyncio.create_task(
        _run_client(gateway, 2, "--send-to", "1", "--text", "hello from 2", "--expect", "1")
    )
    (rc1, out1), (rc2, out2) = await asyncio.gather(one, two)
    assert rc1 == 0 and rc2 == 0, (out1, out2)
    assert any(line.startswith("ACK ") for line in out1)
    assert any(line.startswith("MSG ") and line.endswith(" 2 hello from 2") for line in out1)
    assert any(line.startswith("MSG ") and line.endswith(" 1 hello from 1") for line in out2)


async def test_independent_client_syncs_what_it_missed(gateway: EmbeddedGateway) -> None:
    for user in (4, 5):
        rc, _ = await _run_client(gateway, user, "--send-to", "6", "--text", f"from {user}")
        assert rc == 0
    rc, out = await _run_client(gateway, 6, "--expect", "2", "--sync-limit", "1")
    assert rc == 0
    assert [line for line in out if line.startswith("MSG ")] == ["MSG 1 4 from 4", "MSG 2 5 from 5"]
