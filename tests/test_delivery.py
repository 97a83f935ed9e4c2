"""Nothing acked is lost: inbox sequences, Sync after reconnect, de-duplication."""

from __future__ import annotations

import asyncio

from imaccess.embedded import EmbeddedGateway
from imaccess.protocol import AuthRequest, AuthResponse, Code, SyncRequest, SyncResponse
from imaccess.settings import Settings

from .conftest import ClientFactory, RawFactory, token_for


async def test_sync_after_reconnect_returns_exactly_the_missed(client: ClientFactory) -> None:
    alice, bob = await client(1), await client(2, device_id="bob-phone")
    seen = [await alice.send(2, f"before {i}") for i in range(2)]
    assert [(await bob.next_message(5)).msg_id for _ in seen] == [a.msg_id for a in seen]
    cursor = bob.last_seq
    await bob.close()
    missed = [await alice.send(2, f"while away {i}") for i in range(3)]
    back = await client(2, device_id="bob-phone", last_seq=cursor)
    got = [await back.next_message(5) for _ in missed]
    assert [m.msg_id for m in got] == [a.msg_id for a in missed]
    assert [m.seq for m in got] == [cursor + 1, cursor + 2, cursor + 3]
    after = await alice.send(2, "live again")
    assert (await back.next_message(5)).msg_id == after.msg_id
    assert back._incoming.empty()


async def test_sync_pages(settings: Settings, client: ClientFactory) -> None:
    settings.logic.sync_batch = 4
    alice = await client(1)
    acks = [await alice.send(2, f"m{i}") for i in range(10)]
    bob = await client(2)  # syncs from 0 across three pages
    got = [await bob.next_message(5) for _ in acks]
    assert [m.msg_id for m in got] == [a.msg_id for a in acks]
    assert [m.seq for m in got] == list(range(1, 11))


async def test_raw_sync_paging(settings: Settings, raw: RawFactory, client: ClientFactory) -> None:
    alice = await client(1)
    for i in range(5):
        await alice.send(2, f"m{i}")
    peer = await raw()
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 2), "d", "test"))
    await peer.next()
    seq = peer.send(control, SyncRequest(since_seq=2, limit=2))
    _, page = await peer.next()
    assert page.seq == seq and isinstance(page.body, SyncResponse)
    assert [m.seq for m in page.body.messages] == [3, 4]
    assert page.body.has_more and page.body.max_seq == 5
    peer.send(control, SyncRequest(since_seq=4, limit=0))
    _, last = await peer.next()
    assert isinstance(last.body, SyncResponse)
    assert [m.content for m in last.body.messages] == ["m4"] and not last.body.has_more


async def test_duplicate_msg_id_is_accepted_once_and_acked_again(client: ClientFactory) -> None:
    alice, bob = await client(1), await client(2)
    first = await alice.send(2, "once", msg_id="fixed-id-1")
    again = await alice.send(2, "once", msg_id="fixed-id-1")
    assert again.duplicate and not first.duplicate
    assert again.server_seq == first.server_seq and again.timestamp == first.timestamp
    assert (await bob.next_message(5)).msg_id == "fixed-id-1"
    marker = await alice.send(2, "next")
    assert (await bob.next_message(5)).msg_id == marker.msg_id  # no second copy in between


async def test_client_reconnects_after_a_backoff_code_and_syncs(
    gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    alice = await client(1)
    bob = await client(2, backoff_base=0.05)
    first_conn = bob.conn_id
    (conn,) = gateway.node.hub.of_user(2)
    conn.kick(Code.INTERNAL_ERROR, "test: server-side failure")  # 3xxx: reconnect
    # while bob is away (or reconnecting), messages still get acked and stored
    acks = [await alice.send(2, f"during {i}") for i in range(3)]
    got = [await bob.next_message(5) for _ in acks]
    assert [m.msg_id for m in got] == [a.msg_id for a in acks]
    assert bob.connects == 2 and bob.conn_id != first_conn and bob.stopped is None


async def test_send_during_reconnect_is_retried_with_the_same_id(
    gateway: EmbeddedGateway, client: ClientFactory
) -> None:
    bob = await client(2)
    alice = await client(1, backoff_base=0.05)
    (conn,) = gateway.node.hub.of_user(1)
    conn.kick(Code.INTERNAL_ERROR, "test")
    ack = await alice.send(2, "sent across a reconnect", msg_id="across-1")
    assert ack.code == Code.OK
    assert (await bob.next_message(5)).msg_id == "across-1"


async def test_message_to_offline_user_waits_in_the_inbox(
    raw: RawFactory, settings: Settings, client: ClientFactory
) -> None:
    alice = await client(1)
    ack = await alice.send(42, "you were offline")
    peer = await raw()
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 42), "d", "test"))
    await peer.next()
    peer.send(control, SyncRequest())
    _, page = await peer.next()
    assert isinstance(page.body, SyncResponse)
    assert [m.msg_id for m in page.body.messages] == [ack.msg_id]
    assert page.body.messages[0].seq == 1


async def test_client_that_stops_reading_is_cut_and_loses_nothing(
    settings: Settings, raw: RawFactory, client: ClientFactory, gateway: EmbeddedGateway
) -> None:
    settings.limits.max_frame_size = 16 * 1024
    settings.limits.max_outbound_bytes = 32 * 1024
    peer = await raw()
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 50), "stuck", "test"))
    _, auth = await peer.next()
    assert isinstance(auth.body, AuthResponse) and auth.body.code == Code.OK
    (conn,) = gateway.node.hub.of_user(50)
    peer.vanish()
    sender = await client(51)
    acks = [await sender.send(50, "x" * 1000) for _ in range(60)]  # ~60 KB > the bound
    await asyncio.wait_for(conn.gone, 10)
    assert conn.session.close_code == Code.SLOW_CONSUMER
    assert gateway.node.hub.of_user(50) == []
    back = await client(50, device_id="stuck")
    got = [await back.next_message(5) for _ in acks]  # Sync pages of at most 16 KiB each
    assert [m.msg_id for m in got] == [a.msg_id for a in acks]
