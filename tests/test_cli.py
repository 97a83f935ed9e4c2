"""The commands a new user runs: ``imaccess dev``, ``imaccess token``, ``imaccess chat``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from imaccess.client import Client

from .devserver import imaccess_command as _imaccess


async def _line(stream: asyncio.StreamReader | None, prefix: bytes, timeout: float = 10) -> bytes:
    assert stream is not None
    while True:
        line = await asyncio.wait_for(stream.readline(), timeout)
        if not line:
            raise EOFError(f"stream ended before a line starting {prefix!r}")
        if line.startswith(prefix):
            return line


async def test_token_command_prints_a_token_the_gateway_accepts(
    cli_env: dict[str, str], dev_server: asyncio.subprocess.Process
) -> None:
    proc = await _imaccess(cli_env, "token", "31")
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    host, port = cli_env["IMACCESS_LISTEN"].split(":")
    ca = Path(cli_env["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem"
    async with Client(
        host, int(port), token=out.decode().strip(), ca_file=str(ca), server_name="localhost"
    ) as c:
        assert c.user_id == 31


async def test_chat_command_sends_and_shows_messages(
    cli_env: dict[str, str], dev_server: asyncio.subprocess.Process
) -> None:
    from imaccess.auth import issue_token
    from imaccess.settings import load_settings

    host, port = cli_env["IMACCESS_LISTEN"].split(":")
    ca = Path(cli_env["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem"
    auth = load_settings(environ=cli_env).auth
    async with Client(
        host, int(port), token=issue_token(auth, 2), ca_file=str(ca), server_name="localhost"
    ) as bob:
        chat = await _imaccess(
            cli_env, "chat", "--user", "1", "--peer", "2", stdin=asyncio.subprocess.PIPE
        )
        assert chat.stdin is not None
        await _line(chat.stdout, b"connected as user 1")
        chat.stdin.write(b"hello from the terminal\n")
        await chat.stdin.drain()
        await _line(chat.stdout, b"  \xe2\x9c\x93 delivered")
        message = await bob.next_message(10)
        assert (message.from_user, message.content) == (1, "hello from the terminal")
        await bob.send(1, "hello back")
        shown = await _line(chat.stdout, b"[")
        assert b"2 -> 1: hello back" in shown
        chat.stdin.close()
        assert await asyncio.wait_for(chat.wait(), 10) == 0
