"""The single-node gateway end to end: real QUIC on loopback, the SDK and raw peers."""

from __future__ import annotations

import pytest

from imaccess.client import Disconnected
from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    ChatMessage,
    Code,
    MessageAck,
)
from imaccess.settings import MultiDevicePolicy, Settings

from .conftest import ClientFactory, RawFactory, token_for


async def test_two_users_chat(client: ClientFactory) -> None:
    alice, bob = await client(1), await client(2)
    ack = await alice.send(2, "hello bob")
    assert ack.code == Code.OK and ack.server_seq > 0 and not ack.duplicate
    received = await bob.next_message(5)
    assert (received.msg_id, received.from_user, received.to_user, received.content) == (
        ack.msg_id,
        1,
        2,
        "hello bob",
    )
    assert received.seq == 1 and received.timestamp == ack.timestamp
    reply = await bob.send(1, "hi alice")
    got = await alice.next_message(5)
    assert got.msg_id == reply.msg_id and got.from_user == 2 and got.content == "hi alice"


async def test_every_device_of_a_user_receives(client: ClientFactory) -> None:
    phones = [await client(7, device_id=f"device-{i}") for i in range(3)]
    sender = await client(8)
    ack = await sender.send(7, "to all of you")
    for phone in phones:
        message = await phone.next_message(5)
        assert message.msg_id == ack.msg_id and message.content == "to all of you"


async def test_sender_other_devices_get_a_copy(client: ClientFactory) -> None:
    laptop = await client(11, device_id="laptop")
    phone = await client(11, device_id="phone")
    await client(12)
    ack = await laptop.send(12, "sent from the laptop")
    copy = await phone.next_message(5)
    assert copy.msg_id == ack.msg_id and copy.from_user == 11 and copy.to_user == 12
    # the sending device has the ack: its copy is not handed to it again, so the next
    # message it sees is one sent to it afterwards
    marker = await (await client(12)).send(11, "marker")
    assert (await laptop.next_message(5)).msg_id == marker.msg_id


async def test_server_sets_from_user(
    raw: RawFactory, client: ClientFactory, settings: Settings
) -> None:
    bob = await client(2)
    peer = await raw()
    control = peer.new_stream()
    peer.send(control, AuthRequest(token_for(settings, 1), "d", "test"))
    _, auth = await peer.next()
    assert isinstance(auth.body, AuthResponse) and auth.body.code == Code.OK
    seq = peer.send(control, ChatMessage("spoof-1", from_user=999, to_user=2, content="who am i"))
    ack = await peer.next_of(MessageAck)
    assert ack.seq == seq and isinstance(ack.body, MessageAck) and ack.body.code == Code.OK
    message = await bob.next_message(5)
    assert message.from_user == 1


@pytest.mark.parametrize(
    ("policy", "second", "first_kicked"),
    [
        (MultiDevicePolicy.SINGLE_DEVICE, ("d2", "android"), True),
        (MultiDevicePolicy.MULTI_DEVICE, ("d2", "ios"), False),
        (MultiDevicePolicy.SINGLE_PER_PLATFORM, ("d2", "ios"), True),
        (MultiDevicePolicy.SINGLE_PER_PLATFORM, ("d2", "android"), False),
        (MultiDevicePolicy.MULTI_DEVICE, ("d1", "ios"), True),  # same device reconnects
    ],
)
async def test_multi_device_policy(
    settings: Settings,
    client: ClientFactory,
    policy: MultiDevicePolicy,
    second: tuple[str, str],
    first_kicked: bool,
) -> None:
    settings.multi_device_policy = policy
    first = await client(5, device_id="d1", platform="ios")
    newer = await client(5, device_id=second[0], platform=second[1])
    sender = await client(6)
    ack = await sender.send(5, "who gets this")
    assert (await newer.next_message(5)).msg_id == ack.msg_id
    if first_kicked:
        with pytest.raises(Disconnected) as stopped:
            await first.next_message(5)
        assert stopped.value.code == Code.KICKED_NEW_LOGIN
    else:
        assert (await first.next_message(5)).msg_id == ack.msg_id
        assert first.stopped is None
