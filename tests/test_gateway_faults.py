"""Bad input and timeouts: each gets its code, and nobody else notices."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest

from imaccess.client import AuthFailed
from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    ChatMessage,
    Code,
    Error,
    Heartbeat,
    Kick,
    MessageAck,
    encode_frame,
)
from imaccess.settings import Settings

from .conftest import ClientFactory, RawFactory, token_for
from .rawquic import RawPeer


async def _authenticated(raw: RawFactory, settings: Settings, user_id: int) -> tuple[RawPeer, int]:
    peer = await raw()
    return peer, await peer.authenticate(token_for(settings, user_id), f"raw-{user_id}")


async def test_bad_token_is_refused_then_closed(raw: RawFactory) -> None:
    peer = await raw()
    stream = peer.new_stream()
    seq = peer.send(stream, AuthRequest("not-a-jwt", "d", "test"))
    _, reply = await peer.next()
    assert reply.seq == seq
    assert isinstance(reply.body, AuthResponse) and reply.body.code == Code.AUTH_INVALID_TOKEN
    assert (await peer.closed()).error_code == Code.AUTH_INVALID_TOKEN


async def test_expired_token(client: ClientFactory, settings: Settings) -> None:
    expired = token_for(settings, 3, ttl=60, now=time.time() - 3600)
    with pytest.raises(AuthFailed) as refused:
        await client(3, token=expired)
    assert refused.value.code == Code.AUTH_TOKEN_EXPIRED


async def test_token_signed_with_another_secret(client: ClientFactory, settings: Settings) -> None:
    settings_copy = Settings()
    settings_copy.auth.secret = "another-secret-that-is-long-enough-for-hs256-xx"
    forged = token_for(settings_copy, 3)
    with pytest.raises(AuthFailed) as refused:
        await client(3, token=forged)
    assert refused.value.code == Code.AUTH_INVALID_TOKEN


async def test_auth_deadline(settings: Settings, raw: RawFactory) -> None:
    settings.auth.deadline = 0.3
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        stream = peer.new_stream()
        peer.send(stream, Heartbeat())  # opens the control stream, no auth
        _, echo = await peer.next()
        assert isinstance(echo.body, Heartbeat)
        _, kick = await peer.next()
        assert isinstance(kick.body, Kick) and kick.body.code == Code.AUTH_TIMEOUT
        assert (await peer.closed()).error_code == Code.AUTH_TIMEOUT
        peer.close()


async def test_heartbeat_timeout(settings: Settings, raw: RawFactory) -> None:
    settings.heartbeat.interval = 0.2
    settings.heartbeat.timeout = 0.6
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        stream = peer.new_stream()
        peer.send(stream, AuthRequest(token_for(settings, 4), "d", "test"))
        _, auth = await peer.next()
        assert isinstance(auth.body, AuthResponse) and auth.body.heartbeat_timeout_ms == 600
        started = time.monotonic()
        _, kick = await peer.next(timeout=5)  # silence from here on
        assert isinstance(kick.body, Kick) and kick.body.code == Code.HEARTBEAT_TIMEOUT
        assert time.monotonic() - started >= 0.5
        assert (await peer.closed()).error_code == Code.HEARTBEAT_TIMEOUT
        peer.close()


async def test_heartbeats_keep_a_connection_alive(settings: Settings) -> None:
    settings.heartbeat.interval = 0.1
    settings.heartbeat.timeout = 0.4
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        stream = await peer.authenticate(token_for(settings, 4))
        for _ in range(10):  # 10 x 0.1 s = 2.5 timeouts of activity
            seq = peer.send(stream, Heartbeat())
            _, echo = await peer.next()
            assert isinstance(echo.body, Heartbeat) and echo.seq == seq
            await asyncio.sleep(0.1)  # the client's heartbeat interval, not a wait for an event
        assert not peer.terminated.done()
        peer.close()


async def test_quic_pings_keep_a_connection_alive(settings: Settings) -> None:
    """Raw-QUIC clients keep alive with QUIC PINGs (PROTOCOL.md "Heartbeat"): no frame at
    all after the AuthAck, and the node still does not time the connection out."""
    settings.heartbeat.interval = 0.1
    settings.heartbeat.timeout = 0.4
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        await peer.authenticate(token_for(settings, 4))
        for _ in range(10):  # 10 x 0.1 s = 2.5 timeouts of activity
            await asyncio.wait_for(peer.protocol.ping(), 2)  # the node's ACK answers it
            await asyncio.sleep(0.1)  # the client's heartbeat interval, not a wait for an event
        assert not peer.terminated.done()
        assert peer.packets.empty()  # no Kick, and no frame was needed either way
        peer.close()


async def test_a_vanished_client_is_reaped_by_the_quic_idle_timeout(settings: Settings) -> None:
    """A client that disappears without a word is forgotten at the QUIC idle timeout, a
    deadline kept in the server's shared timer wheel (it is far away when armed)."""
    settings.quic.idle_timeout = 2.0
    settings.heartbeat.timeout = 600  # so the QUIC idle timeout, not the node, reaps it
    async with EmbeddedGateway(settings) as gw:
        peer = await RawPeer.connect(*gw.address, gw.cert_file)
        await peer.authenticate(token_for(settings, 4))
        (conn,) = gw.node.hub.of_user(4)
        # the PING carries the ACK of the AuthAck: no loss timer is left to close it early
        await asyncio.wait_for(peer.protocol.ping(), 2)
        peer.vanish()
        started = time.monotonic()
        await asyncio.wait_for(conn.gone, 10)
        assert time.monotonic() - started >= 1.0  # the idle timeout, not a close
        assert gw.node.hub.of_user(4) == []
        peer.close()


async def test_malformed_frame_closes_only_that_connection(
    raw: RawFactory, client: ClientFactory, settings: Settings
) -> None:
    alice, bob = await client(1), await client(2)
    peer, control = await _authenticated(raw, settings, 9)
    peer.write(control, encode_frame(10, b"\x01\x02\x03 definitely not a flatbuffer"))
    _, error = await peer.next()
    assert isinstance(error.body, Error) and error.body.code == Code.MALFORMED_FRAME
    assert (await peer.closed()).error_code == Code.MALFORMED_FRAME
    ack = await alice.send(2, "still fine")
    assert (await bob.next_message(5)).msg_id == ack.msg_id


async def test_oversized_frame(raw: RawFactory, settings: Settings, client: ClientFactory) -> None:
    bob = await client(2)
    peer, control = await _authenticated(raw, settings, 9)
    peer.write(control, struct.pack(">I", settings.limits.max_frame_size + 1))
    _, error = await peer.next()
    assert isinstance(error.body, Error) and error.body.code == Code.FRAME_TOO_LARGE
    assert (await peer.closed()).error_code == Code.FRAME_TOO_LARGE
    sender = await client(1)
    ack = await sender.send(2, "unaffected")
    assert (await bob.next_message(5)).msg_id == ack.msg_id


async def test_length_below_two(raw: RawFactory) -> None:
    peer = await raw()
    peer.write(peer.new_stream(), b"\x00\x00\x00\x01\x00")
    _, error = await peer.next()
    assert isinstance(error.body, Error) and error.body.code == Code.MALFORMED_FRAME
    assert (await peer.closed()).error_code == Code.MALFORMED_FRAME


async def test_unknown_msg_type_keeps_the_connection(raw: RawFactory, settings: Settings) -> None:
    from imaccess.protocol.codec import encode_body

    peer, control = await _authenticated(raw, settings, 9)
    peer.write(control, encode_body(77, 777, b""))
    _, error = await peer.next()
    assert error.seq == 77
    assert isinstance(error.body, Error) and error.body.code == Code.UNKNOWN_MSG_TYPE
    seq = peer.send(control, Heartbeat())
    _, echo = await peer.next()
    assert isinstance(echo.body, Heartbeat) and echo.seq == seq


async def test_chat_before_auth_is_a_protocol_error(raw: RawFactory) -> None:
    peer = await raw()
    peer.send(peer.new_stream(), ChatMessage("m", to_user=2, content="sneaky"))
    _, error = await peer.next()
    assert isinstance(error.body, Error) and error.body.code == Code.PROTOCOL_ERROR
    assert (await peer.closed()).error_code == Code.PROTOCOL_ERROR


async def test_third_stream_is_a_protocol_error(raw: RawFactory, settings: Settings) -> None:
    peer, _ = await _authenticated(raw, settings, 9)
    message_stream = peer.new_stream()
    peer.send(message_stream, Heartbeat())
    await peer.next()
    peer.send(peer.new_stream(), Heartbeat())
    _, error = await peer.next()
    assert isinstance(error.body, Error) and error.body.code == Code.PROTOCOL_ERROR
    assert (await peer.closed()).error_code == Code.PROTOCOL_ERROR


async def test_invalid_message_gets_a_coded_ack(raw: RawFactory, settings: Settings) -> None:
    peer, control = await _authenticated(raw, settings, 9)
    peer.send(control, ChatMessage("", to_user=2, content="no id"))
    _, ack = await peer.next()
    assert isinstance(ack.body, MessageAck) and ack.body.code == Code.INVALID_MESSAGE
    peer.send(control, ChatMessage("x", to_user=0, content="nobody"))
    _, ack = await peer.next()
    assert isinstance(ack.body, MessageAck) and ack.body.code == Code.INVALID_MESSAGE
    forged = '{"file_id": "0123456789abcdef0123456789abcdef", "name": "x", "size": 1}'
    peer.send(control, ChatMessage("y", to_user=2, content=forged, content_type=1))
    _, ack = await peer.next()  # only the node announces files
    assert isinstance(ack.body, MessageAck) and ack.body.code == Code.INVALID_MESSAGE
    assert not peer.terminated.done()


async def test_garbage_flood_does_not_stall_others(
    raw: RawFactory, client: ClientFactory, settings: Settings
) -> None:
    alice, bob = await client(1), await client(2)
    peers = [await raw() for _ in range(5)]
    for i, peer in enumerate(peers):
        peer.write(peer.new_stream(), bytes([i]) * 5000)
    acks = [await alice.send(2, f"m{i}") for i in range(20)]
    received = [await bob.next_message(5) for _ in acks]
    assert [m.msg_id for m in received] == [a.msg_id for a in acks]
    for peer in peers:
        assert (await peer.closed()).error_code in (Code.MALFORMED_FRAME, Code.FRAME_TOO_LARGE)


async def test_untrusted_certificate_stops_the_client_instead_of_retrying(
    gateway: EmbeddedGateway, tmp_path: object
) -> None:
    from imaccess.client import Client, Disconnected
    from imaccess.transport.certs import generate_certificate

    other, _ = generate_certificate()
    ca = Path(str(tmp_path)) / "other.pem"
    ca.write_bytes(other)
    c = Client(
        *gateway.address,
        token=token_for(gateway.settings, 1),
        ca_file=str(ca),
        server_name="localhost",
        backoff_base=0.01,
    )
    with pytest.raises(Disconnected) as stopped:
        await c.connect()
    assert 0x100 <= stopped.value.code <= 0x1FF
    await c.close()


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs512(claims: dict[str, int], secret: str) -> str:
    import warnings

    import jwt

    with warnings.catch_warnings():  # the forger does not care that its key is short
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, "HS512")


def _forged_tokens(settings: Settings) -> dict[str, str]:
    import json

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = int(time.time())
    claims = {"sub": "1", "iat": now, "exp": now + 600}
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "alg none": f"{none_header}.{_b64(json.dumps(claims).encode())}.",
        "wrong key": jwt.encode(claims, "another-secret-of-enough-length-0123456789", "HS256"),
        "wrong algorithm": jwt.encode(claims, pem, "ES256"),
        "HS512 with the right secret": _hs512(claims, settings.auth.secret),
        "expired": jwt.encode({**claims, "exp": now - 3600}, settings.auth.secret, "HS256"),
        "no sub": jwt.encode({"exp": now + 600}, settings.auth.secret, "HS256"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "wrong key",
        "wrong algorithm",
        "HS512 with the right secret",
        "expired",
        "no sub",
    ],
)
async def test_forged_tokens_are_refused(case: str, raw: RawFactory, settings: Settings) -> None:
    token = _forged_tokens(settings)[case]
    peer = await raw()
    peer.send(peer.new_stream(), AuthRequest(token, "d", "test"))
    _, reply = await peer.next()
    assert isinstance(reply.body, AuthResponse)
    expected = Code.AUTH_TOKEN_EXPIRED if case == "expired" else Code.AUTH_INVALID_TOKEN
    assert reply.body.code == expected
    assert (await peer.closed()).error_code == expected


async def test_every_location_is_refreshed_a_slice_at_a_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node refreshes its connections' locations a slice per loop turn; every slice
    is refreshed, so no location lapses while its connection lives."""
    from imaccess import presence
    from imaccess.client import Client

    monkeypatch.setattr(presence, "LOCATION_SLICE", 2)
    settings.locations.ttl = 0.9  # refreshed every 0.3 s
    async with EmbeddedGateway(settings) as gw:
        clients = [
            Client(
                *gw.address,
                token=token_for(settings, user),
                ca_file=gw.cert_file,
                server_name="localhost",
            )
            for user in range(1, 6)
        ]
        try:
            for c in clients:
                await c.connect()
            await asyncio.sleep(2.0)  # over two TTLs: only refreshes keep the entries
            for user in range(1, 6):
                assert len(await gw.locations.locations(user)) == 1, user
        finally:
            for c in clients:
                await c.close()
