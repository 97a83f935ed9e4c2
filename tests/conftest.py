"""Fixtures: an embedded gateway on a free loopback port, SDK clients, raw QUIC peers."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from imaccess.auth import issue_token
from imaccess.client import Client
from imaccess.embedded import EmbeddedGateway
from imaccess.settings import Settings, load_settings
from imaccess.transport.certs import ensure_dev_certificate

from .devserver import *  # noqa: F403  (fixtures)
from .devserver import TEST_SECRET
from .nats_servers import *  # noqa: F403  (fixtures)
from .rawquic import RawPeer
from .redis_servers import *  # noqa: F403  (fixtures)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    ensure_dev_certificate(directory)
    return directory


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    """What a test started, stopped in reverse order when it ends."""
    async with contextlib.AsyncExitStack() as s:
        yield s


@pytest.fixture
def settings(cert_dir: Path, tmp_path: Path) -> Settings:
    """Defaults with a free port, the shared test certificate and a test secret.

    Tests change fields on it before asking for ``gateway``.
    """
    s = load_settings(environ={})
    s.listen = "127.0.0.1:0"
    s.quic.state_dir = str(cert_dir)
    s.auth.secret = TEST_SECRET
    s.admin.listen = "127.0.0.1:0"
    s.http.listen = "127.0.0.1:0"
    s.files.directory = str(tmp_path / "files")
    return s


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[EmbeddedGateway]:
    async with EmbeddedGateway(settings) as gw:
        yield gw


ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def client(gateway: EmbeddedGateway) -> AsyncIterator[ClientFactory]:
    """``await client(user_id, **Client kwargs)``: a connected SDK client, closed after."""
    made: list[Client] = []

    async def make(user_id: int, *, connect: bool = True, **kwargs: Any) -> Client:
        host, port = gateway.address
        kwargs.setdefault("token", issue_token(gateway.settings.auth, user_id))
        kwargs.setdefault("ack_timeout", 2.0)
        c = Client(host, port, ca_file=gateway.cert_file, server_name="localhost", **kwargs)
        made.append(c)
        if connect:
            await c.connect()
        return c

    yield make
    for c in made:
        await c.close()


RawFactory = Callable[..., Awaitable[RawPeer]]


@pytest.fixture
async def raw(gateway: EmbeddedGateway) -> AsyncIterator[RawFactory]:
    """``await raw()``: a bare QUIC connection that speaks frames, for misbehaving peers."""
    made: list[RawPeer] = []

    async def make(**kwargs: Any) -> RawPeer:
        host, port = gateway.address
        peer = await RawPeer.connect(host, port, gateway.cert_file, **kwargs)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def token_for(settings: Settings, user_id: int, **kwargs: Any) -> str:
    return issue_token(settings.auth, user_id, **kwargs)


def with_changes(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
