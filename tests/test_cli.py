"""The commands a new user runs: ``imaccess dev``, ``imaccess token``, ``imaccess chat``."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imaccess.client import Client

from .conftest import TEST_SECRET


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        IMACCESS_AUTH_SECRET=TEST_SECRET,
        IMACCESS_QUIC_STATE_DIR=str(tmp_path / "state"),
        IMACCESS_LISTEN=f"127.0.0.1:{_free_udp_port()}",
        IMACCESS_ADMIN_LISTEN="127.0.0.1:0",
        IMACCESS_HTTP_LISTEN="127.0.0.1:0",
        PYTHONUNBUFFERED="1",
    )
    return env


async def _imaccess(
    env: dict[str, str], *args: str, stdin: int | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imaccess",
        *args,
        env=env,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def dev_server(cli_env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await _imaccess(cli_env, "dev")
    assert proc.stdout is not None
    banner = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert banner.startswith(b"imaccess dev:"), banner
    yield proc
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 10) == 0


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
