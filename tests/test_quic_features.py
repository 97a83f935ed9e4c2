"""QUIC features the gateway relies on: 0-RTT rules, address validation with Retry, and
connection migration (a client whose address changes keeps its session)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aioquic._buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.tls import Epoch

from imaccess.bus import Upstream
from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import AuthRequest, AuthResponse, ChatMessage, Code, Heartbeat, MessageAck
from imaccess.settings import Settings
from imaccess.transport.aioquic_internals import CompactQuicConnection

from .conftest import ClientFactory, RawFactory, token_for
from .rawquic import RawPeer


async def _ticket(gateway: EmbeddedGateway) -> object:
    first = await RawPeer.connect(*gateway.address, gateway.cert_file)
    first.send(first.new_stream(), Heartbeat())
    await first.next()  # the ticket arrives with the handshake's last flight
    assert first.tickets, "the node issues session tickets"
    first.close()
    return first.tickets[-1]


async def test_zero_rtt_refuses_auth_but_serves_heartbeats(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    ticket = await _ticket(gateway)
    peer = await RawPeer.connect(
        *gateway.address,
        gateway.cert_file,
        session_ticket=ticket,
        wait=False,  # type: ignore[arg-type]
    )
    control = peer.new_stream()
    hb = peer.send(control, Heartbeat())  # both go out as 0-RTT data
    early_auth = peer.send(control, AuthRequest(token_for(settings, 1), "early", "test"))
    _, echo = await peer.next()
    assert echo.seq == hb and isinstance(echo.body, Heartbeat)
    _, refused = await peer.next()
    assert refused.seq == early_auth and isinstance(refused.body, AuthResponse)
    assert refused.body.code == Code.EARLY_DATA_REFUSED
    done = await asyncio.wait_for(asyncio.shield(peer.handshake), 5)
    assert done.session_resumed and done.early_data_accepted
    peer.send(control, AuthRequest(token_for(settings, 1), "early", "test"))
    ok = await peer.next_of(AuthResponse)
    assert isinstance(ok.body, AuthResponse) and ok.body.code == Code.OK
    peer.close()


async def test_a_message_resent_after_resumption_is_delivered_once(
    settings: Settings, gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    bob = await client(2)
    ticket = await _ticket(gateway)
    for attempt in range(2):  # the same message on two resumed connections
        peer = await RawPeer.connect(
            *gateway.address,
            gateway.cert_file,
            session_ticket=ticket,  # type: ignore[arg-type]
        )
        control = peer.new_stream()
        peer.send(control, AuthRequest(token_for(settings, 1), f"phone-{attempt}", "test"))
        await peer.next_of(AuthResponse)
        peer.send(control, ChatMessage("replayed-1", to_user=2, content="once"))
        ack = await peer.next_of(MessageAck)
        assert isinstance(ack.body, MessageAck) and ack.body.duplicate == (attempt == 1)
        ticket = peer.tickets[-1] if peer.tickets else ticket
        peer.close()
    assert (await bob.next_message(5)).msg_id == "replayed-1"
    marker = await (await client(3)).send(2, "marker")
    assert (await bob.next_message(5)).msg_id == marker.msg_id  # no second copy before it


async def _authenticated_ticket(settings: Settings, gateway: EmbeddedGateway, user: int) -> object:
    first = await RawPeer.connect(*gateway.address, gateway.cert_file)
    control = first.new_stream()
    first.send(control, AuthRequest(token_for(settings, user), "phone", "test"))
    assert (await first.next_of(AuthResponse)).body.code == Code.OK  # type: ignore[attr-defined]
    assert first.tickets, "the node issues session tickets"
    first.close()
    return first.tickets[-1]


async def _replay(datagrams: list[bytes], address: tuple[str, int]) -> None:
    """What an on-path attacker can do with 0-RTT: send the captured flight again."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind(("127.0.0.1", 0))
        for datagram in datagrams:
            attacker.sendto(datagram, address)


async def test_a_message_in_early_data_is_accepted_once_and_replays_change_nothing(
    settings: Settings, gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    bob = await client(2)
    ticket = await _authenticated_ticket(settings, gateway, user=1)
    peer = await RawPeer.connect(
        *gateway.address,
        gateway.cert_file,
        session_ticket=ticket,  # type: ignore[arg-type]
        wait=False,
        record=True,
    )
    control = peer.new_stream()
    peer.send(control, ChatMessage("early-1", to_user=2, content="sent in 0-RTT"))
    ack = await peer.next_of(MessageAck)
    assert isinstance(ack.body, MessageAck)
    assert (ack.body.code, ack.body.duplicate) == (Code.OK, False)
    done = await asyncio.wait_for(asyncio.shield(peer.handshake), 5)
    assert done.session_resumed and done.early_data_accepted
    flight = list(peer.sent_datagrams)
    peer.send(control, AuthRequest(token_for(settings, 1), "phone", "test"))
    assert (await peer.next_of(AuthResponse)).body.code == Code.OK  # type: ignore[attr-defined]
    # a client that lost the ack sends the message again once authenticated
    peer.send(control, ChatMessage("early-1", to_user=2, content="sent in 0-RTT"))
    again = await peer.next_of(MessageAck)
    assert isinstance(again.body, MessageAck) and again.body.duplicate

    await _replay(flight, gateway.address)  # while the connection lives
    peer.close()
    await peer.closed()
    await _replay(flight, gateway.address)  # and after: its ticket was used up
    delivered = await bob.next_message(5)
    assert (delivered.msg_id, delivered.from_user) == ("early-1", 1)
    marker = await (await client(3)).send(2, "marker")
    assert (await bob.next_message(5)).msg_id == marker.msg_id  # no second copy before it


async def test_early_data_messages_need_a_ticket_from_an_authenticated_connection(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    ticket = await _ticket(gateway)  # its connection never authenticated
    peer = await RawPeer.connect(
        *gateway.address,
        gateway.cert_file,
        session_ticket=ticket,  # type: ignore[arg-type]
        wait=False,
    )
    peer.send(peer.new_stream(), ChatMessage("early-2", to_user=2, content="who am I"))
    closed = await peer.closed()
    peer.close()
    assert closed.error_code == Code.PROTOCOL_ERROR


async def test_retry_validates_addresses_before_handshake_work(settings: Settings) -> None:
    settings.quic.retry = True
    async with EmbeddedGateway(settings) as gw:
        # a spoofed Initial: the node answers with a stateless Retry and keeps nothing
        configuration = QuicConfiguration(is_client=True, alpn_protocols=["im-access"])
        initial = QuicConnection(configuration=configuration)
        now = asyncio.get_running_loop().time()
        initial.connect(gw.address, now=now)
        (datagram, _), *_ = initial.datagrams_to_send(now=now)
        spoofed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        spoofed.bind(("127.0.0.1", 0))
        spoofed.sendto(datagram, gw.address)
        spoofed.settimeout(5)
        reply = await asyncio.to_thread(spoofed.recv, 2048)
        spoofed.close()
        assert reply[0] & 0xF0 == 0xF0  # long header, type Retry (RFC 9000 §17.2.5)
        assert gw.quic_server.peer_count == 0 and len(gw.node.hub) == 0
        # a real client follows the Retry and gets in
        real = await RawPeer.connect(*gw.address, gw.cert_file)
        control = real.new_stream()
        real.send(control, AuthRequest(token_for(settings, 1), "d", "test"))
        ok = await real.next_of(AuthResponse)
        assert isinstance(ok.body, AuthResponse) and ok.body.code == Code.OK
        real.close()


async def test_migration_to_a_new_port_keeps_the_session(
    settings: Settings, gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    bob = await client(2)
    peer = await RawPeer.connect(*gateway.address, gateway.cert_file)
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 1), "phone", "test"))
    auth = await peer.next_of(AuthResponse)
    assert isinstance(auth.body, AuthResponse)
    (server_conn,) = gateway.node.hub.of_user(1)
    first_port = server_conn.transport.remote_address[1]
    peer.send(control, ChatMessage("before-move", to_user=2, content="on wifi"))
    await peer.next_of(MessageAck)
    new_port = await peer.rebind()  # wifi -> 4G: same connection, new address
    peer.send(control, ChatMessage("after-move", to_user=2, content="on 4g"))
    ack = await peer.next_of(MessageAck)
    assert isinstance(ack.body, MessageAck) and ack.body.code == Code.OK
    got = [await bob.next_message(5) for _ in range(2)]
    assert [m.msg_id for m in got] == ["before-move", "after-move"]
    ack2 = await bob.send(1, "reaches the new address")
    push = await peer.next_of(ChatMessage)
    assert isinstance(push.body, ChatMessage) and push.body.msg_id == ack2.msg_id
    assert gateway.node.hub.of_user(1) == [server_conn]  # no re-authentication, same conn
    assert server_conn.transport.remote_address[1] == new_port != first_port
    locations = await gateway.locations.locations(1)
    assert [loc.conn_id for loc in locations] == [auth.body.conn_id]
    peer.close()


def test_connections_share_aioquic_epoch_sets() -> None:
    """The gateway interns aioquic's per-connection epoch frozensets (~7 KB a connection)."""
    import imaccess.transport.aioquic_internals  # noqa: F401  (the import applies it)

    def handlers(quic: QuicConnection) -> dict[int, tuple[object, frozenset[object]]]:
        return quic._QuicConnection__frame_handlers  # type: ignore[attr-defined,no-any-return]

    a, b = (QuicConnection(configuration=QuicConfiguration(is_client=True)) for _ in range(2))
    assert handlers(a)[0x06][1] is handlers(b)[0x06][1]  # CRYPTO: the same set object
    assert handlers(a)[0x06][1] == {Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT}


async def test_the_udp_socket_gets_the_buffers_asked_for(settings: Settings) -> None:
    settings.quic.socket_buffer = 3 * 1024 * 1024
    async with EmbeddedGateway(settings) as gw:
        sock = gw.quic_server.socket
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2 >= 3 * 1024 * 1024
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 >= 3 * 1024 * 1024


async def test_tls_data_after_the_handshake_closes_that_connection_only(
    settings: Settings, gateway: EmbeddedGateway
) -> None:
    """The gateway drops its TLS context once the handshake is over (about half of an
    idle connection's memory); a client sending TLS data after that gets TLS's own answer,
    an unexpected_message alert, and nobody else notices."""
    bystander = await RawPeer.connect(*gateway.address, gateway.cert_file)
    await bystander.authenticate(token_for(settings, 2))
    peer = await RawPeer.connect(*gateway.address, gateway.cert_file)
    await peer.authenticate(token_for(settings, 1))
    (server_side,) = gateway.node.hub.of_user(1)
    new_session_ticket = b"\x04\x00\x00\x04\x00\x00\x00\x00"
    peer.quic._crypto_streams[Epoch.ONE_RTT].sender.write(new_session_ticket)
    peer.protocol.transmit()
    closed = await peer.closed()
    assert closed.error_code == 0x100 + 10  # CRYPTO_ERROR + unexpected_message
    await asyncio.wait_for(server_side.gone, 5)
    control = bystander.new_stream()
    bystander.send(control, Heartbeat())
    assert isinstance((await bystander.next_of(Heartbeat)).body, Heartbeat)
    assert gateway.node.hub.of_user(1) == []
    peer.close()
    bystander.close()


@pytest.mark.parametrize(
    "payload", [b"", b"\x00" * 1100, b"\x00" * 7 + b"\x01\x02\x00", b"\x06\x00\x00", b"\x00\x1e"]
)
def test_padding_is_skipped_where_aioquic_skips_it(payload: bytes) -> None:
    """The gateway skips PADDING in C rather than aioquic's byte-at-a-time loop; the
    next frame must start at the same place."""

    class Bare:
        _quic_logger = None

    ends = []
    aioquics, ours = QuicConnection, CompactQuicConnection
    for handler in (aioquics._handle_padding_frame, ours._handle_padding_frame):
        buf = Buffer(data=b"\x01\x00" + payload)
        buf.seek(2)  # a PING frame, then the PADDING frame's type byte
        handler(Bare(), None, 0x00, buf)  # type: ignore[arg-type]
        ends.append(buf.tell())
    assert ends[0] == ends[1]


async def test_the_answer_to_a_request_carries_its_ack(
    settings: Settings, gateway: EmbeddedGateway, raw: RawFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message's ack comes after Logic stored it; across NATS that takes milliseconds,
    more than aioquic's 1 ms ack delay. The QUIC ACK waits for the answer instead of
    going out alone, unless a second packet arrives first."""
    store = gateway.logic.process

    async def slow_store(message: Upstream) -> None:
        await asyncio.sleep(0.003)  # the time a Logic across NATS takes
        await store(message)

    monkeypatch.setattr(gateway.logic, "process", slow_store)
    peer = await raw()
    control = await peer.authenticate(token_for(settings, 1))
    peer.arrivals.clear()
    peer.send(control, ChatMessage("one", to_user=2, content="hi"))
    assert (await peer.next_of(MessageAck)).body.code == Code.OK  # type: ignore[attr-defined]
    assert peer.arrivals == [True]  # one datagram: the ack, carrying the ACK

    peer.arrivals.clear()
    peer.send(control, ChatMessage("two", to_user=2, content="hi"))
    peer.send(control, ChatMessage("three", to_user=2, content="hi"))  # a second packet
    await peer.next_of(MessageAck)
    await peer.next_of(MessageAck)
    assert peer.arrivals[0] is False  # both acknowledged at once, before the answers
    assert len(peer.arrivals) >= 2
