"""An ``imaccess dev`` gateway in its own process, for tests that want the node on
another core than the clients (big transfers) or test the command itself."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imaccess.auth import issue_token
from imaccess.client import Client
from imaccess.settings import load_settings

TEST_SECRET = "imaccess-test-secret-0123456789-0123456789-0123456789"

__all__ = ["cli_env", "dev_client", "dev_server", "imaccess_command"]


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
        IMACCESS_FILES_DIRECTORY=str(tmp_path / "files"),
        PYTHONUNBUFFERED="1",
    )
    return env


async def imaccess_command(
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
    proc = await imaccess_command(cli_env, "dev")
    assert proc.stdout is not None
    banner = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert banner.startswith(b"imaccess dev:"), banner
    yield proc
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 10) == 0


def dev_client(env: dict[str, str], user_id: int, **kwargs: object) -> Client:
    """An SDK client of the ``dev_server`` (use with ``async with``)."""
    host, port = env["IMACCESS_LISTEN"].split(":")
    return Client(
        host,
        int(port),
        token=issue_token(load_settings(environ=env).auth, user_id),
        ca_file=str(Path(env["IMACCESS_QUIC_STATE_DIR"]) / "dev-cert.pem"),
        server_name="localhost",
        **kwargs,  # type: ignore[arg-type]
    )
