"""The commands a new user runs: ``imaccess dev``, ``imaccess token``, ``imaccess chat``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from imaccess.client import Client
from imaccess.client.files import file_info

from .devserver import dev_client
from .devserver import imaccess_command as _imaccess


async def _line(stream: asyncio.StreamReader | None, prefix: bytes, timeout: float = 30) -> bytes:
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


@contextlib.asynccontextmanager
async def _chat_as_user_1(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """``imaccess chat`` as user 1 talking to user 2, once it says it is connected; killed
    on the way out if the test did not end it."""
    chat = await _imaccess(env, "chat", "--user", "1", "--peer", "2", stdin=asyncio.subprocess.PIPE)
    try:
        await _line(chat.stdout, b"connected as user 1")
        yield chat
    finally:
        if chat.returncode is None:
            chat.kill()
            await chat.wait()


async def test_chat_command_sends_and_shows_messages(
    cli_env: dict[str, str], dev_server: asyncio.subprocess.Process
) -> None:
    async with dev_client(cli_env, 2) as bob, _chat_as_user_1(cli_env) as chat:
        assert chat.stdin is not None
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


async def test_chat_command_sends_and_saves_files(
    cli_env: dict[str, str], dev_server: asyncio.subprocess.Process, tmp_path: Path
) -> None:
    async with dev_client(cli_env, 2) as bob, _chat_as_user_1(cli_env) as chat:
        assert chat.stdin is not None
        outgoing = tmp_path / "report.csv"
        outgoing.write_bytes(b"a,b\n1,2\n" * 1000)
        chat.stdin.write(f"/send {outgoing}\n".encode())
        await chat.stdin.drain()
        await _line(chat.stdout, b"  \xe2\x9c\x93 file sent")
        announced = await bob.next_message(10)
        info = file_info(announced)
        assert info is not None and info.name == "report.csv"
        await bob.fetch_file(info.file_id, tmp_path / "bob.csv")
        assert (tmp_path / "bob.csv").read_bytes() == outgoing.read_bytes()

        incoming = tmp_path / "photo.png"
        incoming.write_bytes(bytes(range(256)) * 100)
        ack = await bob.send_file(1, incoming)
        shown = await _line(chat.stdout, b"[")
        assert f"file photo.png (25600 bytes) - /save {ack.file_id}".encode() in shown
        saved = tmp_path / "saved.png"
        chat.stdin.write(f"/save {ack.file_id} {saved}\n".encode())
        await chat.stdin.drain()
        await _line(chat.stdout, b"  \xe2\x9c\x93 saved photo.png")
        assert saved.read_bytes() == incoming.read_bytes()
        chat.stdin.close()
        assert await asyncio.wait_for(chat.wait(), 10) == 0
