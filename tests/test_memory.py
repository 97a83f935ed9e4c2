"""What a connection holds while it lives (its own few kilobytes) and leaves behind when it
closes (nothing for the cyclic collector)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import random
import sys
import types
import weakref
from collections.abc import Iterator
from pathlib import Path

import aioquic.quic
import pytest
from aioquic.tls import Epoch

from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import Code
from imaccess.settings import Settings
from imaccess.transport.aioquic_internals import (
    ACK_ONLY_PACKETS_KEPT,
    CompactQuicConnection,
    PacketNumberWindow,
)
from imaccess.transport.reuseport import steered_cid_factory, steered_connection

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


_SHARED_KINDS = (type, types.ModuleType, types.FunctionType, types.CodeType)


def _reachable(root: object, *outside: object) -> dict[int, object]:
    """Every object reachable from ``root``, not looking into classes, modules, code or
    the ``outside`` objects."""
    seen: dict[int, object] = {id(obj): obj for obj in outside}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) not in seen and not isinstance(obj, _SHARED_KINDS):
            seen[id(obj)] = obj
            stack.extend(gc.get_referents(obj))
    return seen


async def test_an_established_connection_holds_only_its_own_few_kilobytes(
    settings: Settings,
) -> None:
    """The Python heap an authenticated QUIC connection holds on its own: whatever it
    reaches that another connection does not. aioquic keeps its whole handshake (TLS
    context, Initial and Handshake keys, packet spaces and CRYPTO streams, TLS buffers,
    eight connection IDs each way, 33 bound frame handlers, 760-byte empty deques) for
    the connection's life; the gateway drops what an established connection no longer
    uses."""
    async with EmbeddedGateway(settings) as gw:
        peers = [await RawPeer.connect(*gw.address, gw.cert_file) for _ in range(2)]
        for user, peer in enumerate(peers, start=1):
            await peer.authenticate(token_for(settings, user))
        (first,) = gw.node.hub.of_user(1)
        (second,) = gw.node.hub.of_user(2)
        outside = (gw, gw.node, gw.quic_server, asyncio.get_running_loop())
        reached = _reachable(first, *outside)
        own = reached.keys() - _reachable(second, *outside).keys()
        size = sum(sys.getsizeof(reached[key]) for key in own)
        assert size < 16_000  # 33,000 with aioquic's connection as it is
        for peer in peers:
            peer.close()


async def test_an_idle_connection_keeps_no_record_of_each_keepalive(settings: Settings) -> None:
    """The server answers each QUIC PING with an ACK-only packet, which the client never
    acknowledges: aioquic kept a record of each, so an idle connection grew by one
    record (~600 bytes) per keepalive for its whole life."""
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        await peer.authenticate(token_for(settings, 1))
        (conn,) = gw.node.hub.of_user(1)
        quic = conn.transport.quic  # type: ignore[attr-defined]
        for uid in range(100):
            await peer.ping(uid)
        records = quic._spaces[Epoch.ONE_RTT].sent_packets
        assert len(records) <= ACK_ONLY_PACKETS_KEPT + 1
        peer.close()


def _aioquic_packet_number_window() -> type:
    """aioquic's own window class, from a fresh copy of its module (the gateway's copy
    has it replaced)."""
    path = Path(aioquic.quic.__file__).parent / "recovery.py"
    spec = importlib.util.spec_from_file_location("aioquic.quic._pristine_recovery", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    window: type = module.QuicPacketNumberWindow
    assert window is not PacketNumberWindow
    return window


@pytest.mark.parametrize("seed", range(20))
def test_the_packet_number_window_answers_as_aioquics_does(seed: int) -> None:
    """Received packet numbers in order, reordered, duplicated and with gaps far past
    the window: every membership question gets aioquic's answer."""
    rng = random.Random(seed)
    ours, theirs = PacketNumberWindow(), _aioquic_packet_number_window()()
    highest = 0
    for _ in range(2000):
        jump = rng.choice([1, 1, 1, 2, 5, -3, -40, 300])
        number = max(0, highest + jump)
        highest = max(highest, number)
        ours.add(number)
        theirs.add(number)
        for probe in range(max(0, highest - 300), highest + 3):
            assert (probe in ours) == (probe in theirs), (seed, probe, highest)
    assert sys.getsizeof(ours._bits) < 100 < sys.getsizeof(theirs._received)


def test_a_workers_steered_connection_holds_what_a_plain_one_does() -> None:
    """A worker's connections make their CIDs with the worker's steering function. Held
    by each connection, it was an 86th instance attribute and doubled every connection's
    ``__dict__`` (1.7 KB each: a two-worker node held 28.3 KB per connection, one process
    26.6). What is left is its CIDs, made twice (~300 bytes)."""
    from bench.quic_connection import heap_per_connection  # the bench's in-memory pairs

    worker_kind = steered_connection(steered_cid_factory(1, 2))
    steered = heap_per_connection(worker_kind, 40)
    plain = heap_per_connection(CompactQuicConnection, 40)
    assert steered < plain + 600  # 1,700 more before
