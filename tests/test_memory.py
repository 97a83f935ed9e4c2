"""What a connection leaves behind when it closes: nothing for the cyclic collector."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import Code
from imaccess.settings import Settings

from .conftest import token_for
from .rawquic import RawPeer


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("ending", ["client closes", "server kicks"])
async def test_a_closed_quic_connection_is_freed_by_reference_counting(
    settings: Settings, collector_off: None, ending: str
) -> None:
    """The gateway runs with full collections rare (imaccess.runtime): a connection
    that needed the cyclic collector to be freed would stay in memory."""
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        await peer.authenticate(token_for(settings, 4))
        (conn,) = gw.node.hub.of_user(4)
        quic_peer = weakref.ref(conn.transport)
        quic = weakref.ref(conn.transport.quic)  # type: ignore[attr-defined]
        gone = conn.gone
        if ending == "client closes":
            peer.close()
        else:
            conn.kick(Code.KICKED_BY_ADMIN, "test")
        del conn
        await asyncio.wait_for(gone, 5)
        await peer.closed()
        for _ in range(100):  # the release runs on a later loop turn
            if quic_peer() is None and quic() is None:
                break
            await asyncio.sleep(0)
        assert quic_peer() is None and quic() is None
        peer.close()
