"""ServerSession driven with bytes and explicit clocks; output frames decoded back."""

from __future__ import annotations

import struct

import pytest

from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Code,
    Error,
    FrameDecoder,
    Heartbeat,
    Kick,
    MessageAck,
    MsgType,
    Notice,
    NoticeKind,
    Packet,
    SyncRequest,
    SyncResponse,
    decode_frame,
    encode_frame,
    encode_packet,
)
from imaccess.protocol.codec import encode_body
from imaccess.protocol.session import (
    AuthRequested,
    ChatReceived,
    CloseRequested,
    ServerSession,
    SessionState,
    SyncRequested,
)

CONTROL, MESSAGE, THIRD = 0, 4, 8
T0 = 1000.0
AUTH_DEADLINE = 10.0
HEARTBEAT_TIMEOUT = 30.0
MAX_FRAME = 514  # 2 + a multiple of 8: a Packet can fill it exactly

AUTH = AuthRequest(token="header.payload.sig", device_id="dev-1", platform="ios")
ACK = AuthResponse(
    code=0,
    user_id=77,
    conn_id=5,
    node_id="node-a",
    heartbeat_interval_ms=15_000,
    heartbeat_timeout_ms=30_000,
)
CHAT = ChatMessage(msg_id="m-1", to_user=9, content="hello")


def new_session(now: float = T0) -> ServerSession:
    return ServerSession(
        now,
        auth_deadline=AUTH_DEADLINE,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        max_frame_size=MAX_FRAME,
    )


def wire(body: Body, seq: int = 0) -> bytes:
    return encode_packet(Packet(seq, body))


def sent(session: ServerSession) -> list[tuple[int, Packet]]:
    """Everything the session queued, each chunk being exactly one decodable frame."""
    out = []
    for stream_id, data in session.data_to_send():
        decoder = FrameDecoder()
        frames = decoder.feed(data)
        assert len(frames) == 1
        assert decoder.buffered == 0
        out.append((stream_id, decode_frame(frames[0])))
    return out


def authenticate(session: ServerSession, now: float = T0, seq: int = 1) -> None:
    events = session.receive(CONTROL, wire(AUTH, seq), now)
    assert events == [AuthRequested(seq, AUTH)]
    session.accept_auth(seq, ACK)
    assert sent(session) == [(CONTROL, Packet(seq, ACK))]
    assert session.state is SessionState.ACTIVE


def assert_closed_with(
    session: ServerSession, events: list, code: Code, stream_id: int = CONTROL
) -> None:
    assert len(events) == 1
    assert isinstance(events[-1], CloseRequested)
    assert events[-1].code is code
    assert session.state is SessionState.CLOSED
    assert session.close_code is code
    assert session.next_deadline() is None
    out = sent(session)
    assert len(out) == 1
    assert out[0][0] == stream_id
    error = out[0][1]
    assert error.seq == 0
    assert isinstance(error.body, Error)
    assert error.body.code == code
    assert error.body.message


# ------------------------------------------------------------------ handshake


@pytest.mark.parametrize(
    "body",
    [CHAT, SyncRequest(1, 10), Kick(int(Code.KICKED_BY_ADMIN)), ACK, Error(1)],
    ids=lambda b: type(b).__name__,
)
def test_first_frame_must_be_auth(body: Body) -> None:
    session = new_session()
    events = session.receive(CONTROL, wire(body, seq=3), T0)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR)


def test_heartbeat_before_auth_is_echoed_with_same_seq() -> None:
    session = new_session()
    assert session.receive(CONTROL, wire(Heartbeat(), seq=41), T0) == []
    assert sent(session) == [(CONTROL, Packet(41, Heartbeat()))]
    assert session.state is SessionState.AWAITING_AUTH
    # Then the Auth is still accepted as the first real frame, even in the same chunk.
    chunk = wire(Heartbeat(), seq=42) + wire(AUTH, seq=43)
    assert session.receive(CONTROL, chunk, T0 + 1) == [AuthRequested(43, AUTH)]
    assert sent(session) == [(CONTROL, Packet(42, Heartbeat()))]


def test_heartbeat_in_early_data_is_echoed() -> None:
    session = new_session()
    assert session.receive(CONTROL, wire(Heartbeat(), seq=2), T0, early_data=True) == []
    assert sent(session) == [(CONTROL, Packet(2, Heartbeat()))]


def test_auth_in_early_data_is_refused_and_connection_stays_open() -> None:
    session = new_session()
    assert session.receive(CONTROL, wire(AUTH, seq=5), T0, early_data=True) == []
    [(stream, reply)] = sent(session)
    assert stream == CONTROL
    assert reply.seq == 5
    assert isinstance(reply.body, AuthResponse)
    assert reply.body.code == Code.EARLY_DATA_REFUSED
    assert session.state is SessionState.AWAITING_AUTH
    assert session.close_code is None
    # The retry after the handshake goes through.
    assert session.receive(CONTROL, wire(AUTH, seq=6), T0 + 0.1) == [AuthRequested(6, AUTH)]
    assert session.state is SessionState.AUTHENTICATING


def test_a_resumed_identity_may_send_messages_and_syncs_in_early_data() -> None:
    session = ServerSession(
        T0, auth_deadline=AUTH_DEADLINE, heartbeat_timeout=HEARTBEAT_TIMEOUT, resumed_user=7
    )
    chunk = wire(CHAT, seq=1) + wire(SyncRequest(3, 10), seq=2)
    events = session.receive(CONTROL, chunk, T0, early_data=True)
    assert events == [
        ChatReceived(1, CONTROL, CHAT, early_data=True),
        SyncRequested(2, CONTROL, SyncRequest(3, 10)),
    ]
    assert session.state is SessionState.AWAITING_AUTH  # the AuthRequest is still due
    assert session.receive(CONTROL, wire(AUTH, seq=3), T0) == [AuthRequested(3, AUTH)]


@pytest.mark.parametrize(
    ("resumed_user", "early_data"), [(0, True), (7, False)], ids=["no-identity", "1-rtt"]
)
def test_messages_before_auth_need_both_early_data_and_a_resumed_identity(
    resumed_user: int, early_data: bool
) -> None:
    session = ServerSession(
        T0,
        auth_deadline=AUTH_DEADLINE,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        resumed_user=resumed_user,
    )
    events = session.receive(CONTROL, wire(CHAT, seq=1), T0, early_data=early_data)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR)


def test_auth_requested_then_accept_sends_auth_ack_on_control_stream() -> None:
    session = new_session()
    assert session.receive(CONTROL, wire(AUTH, seq=7), T0) == [AuthRequested(7, AUTH)]
    assert session.state is SessionState.AUTHENTICATING
    assert session.control_stream == CONTROL
    assert sent(session) == []  # nothing until the adapter decides
    session.accept_auth(7, ACK)
    assert sent(session) == [(CONTROL, Packet(7, ACK))]
    assert session.state is SessionState.ACTIVE
    assert session.user_id == 77
    assert session.close_code is None


def test_auth_split_into_single_bytes() -> None:
    session = new_session()
    data = wire(AUTH, seq=8)
    events = []
    for i in range(len(data)):
        events.extend(session.receive(CONTROL, data[i : i + 1], T0))
    assert events == [AuthRequested(8, AUTH)]


@pytest.mark.parametrize(
    "body", [CHAT, SyncRequest(), AUTH, Kick(1)], ids=lambda b: type(b).__name__
)
def test_frames_while_authenticating_close_with_protocol_error(body: Body) -> None:
    session = new_session()
    session.receive(CONTROL, wire(AUTH, seq=1), T0)
    events = session.receive(CONTROL, wire(body, seq=2), T0)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR)


def test_heartbeat_while_authenticating_is_echoed() -> None:
    session = new_session()
    session.receive(CONTROL, wire(AUTH, seq=1), T0)
    assert session.receive(CONTROL, wire(Heartbeat(), seq=2), T0) == []
    assert sent(session) == [(CONTROL, Packet(2, Heartbeat()))]
    assert session.state is SessionState.AUTHENTICATING


def test_reject_auth_answers_with_code_then_closes() -> None:
    session = new_session()
    session.receive(CONTROL, wire(AUTH, seq=4), T0)
    close = session.reject_auth(4, Code.AUTH_TOKEN_EXPIRED, "token expired")
    assert close == CloseRequested(Code.AUTH_TOKEN_EXPIRED, "token expired")
    assert sent(session) == [
        (
            CONTROL,
            Packet(4, AuthResponse(code=int(Code.AUTH_TOKEN_EXPIRED), message="token expired")),
        )
    ]
    assert session.state is SessionState.CLOSED
    assert session.close_code is Code.AUTH_TOKEN_EXPIRED
    # A late accept is ignored.
    session.accept_auth(4, ACK)
    assert sent(session) == []
    assert session.state is SessionState.CLOSED


# ------------------------------------------------------------------ streams


def test_second_stream_becomes_message_stream_and_push_follows() -> None:
    session = new_session()
    session.push(CHAT)  # no stream, not authenticated: nowhere to go
    session.receive(CONTROL, wire(AUTH, seq=1), T0)
    session.push(CHAT)  # still not authenticated
    assert sent(session) == []
    session.accept_auth(1, ACK)
    sent(session)

    session.push(CHAT, seq=3)
    assert sent(session) == [(CONTROL, Packet(3, CHAT))]  # no message stream yet

    assert session.receive(MESSAGE, wire(Heartbeat(), seq=1), T0) == []
    assert session.message_stream == MESSAGE
    assert session.control_stream == CONTROL
    assert sent(session) == [(MESSAGE, Packet(1, Heartbeat()))]

    session.push(CHAT, seq=4)
    session.push(Notice(NoticeKind.DRAIN, int(Code.DRAINING), "bye", 500))
    assert sent(session) == [
        (MESSAGE, Packet(4, CHAT)),
        (MESSAGE, Packet(0, Notice(NoticeKind.DRAIN, int(Code.DRAINING), "bye", 500))),
    ]


def test_replies_go_to_the_requested_stream() -> None:
    session = new_session()
    authenticate(session)
    session.receive(MESSAGE, wire(Heartbeat()), T0)
    sent(session)
    session.reply(CONTROL, 12, SyncResponse(max_seq=3))
    session.reply(MESSAGE, 13, MessageAck("m-1", server_seq=99))
    assert sent(session) == [
        (CONTROL, Packet(12, SyncResponse(max_seq=3))),
        (MESSAGE, Packet(13, MessageAck("m-1", server_seq=99))),
    ]


def test_third_stream_is_a_protocol_error() -> None:
    session = new_session()
    authenticate(session)
    session.receive(MESSAGE, wire(CHAT, seq=2), T0)
    events = session.receive(THIRD, wire(CHAT, seq=3), T0)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR, stream_id=THIRD)


@pytest.mark.parametrize("authenticating", [False, True])
def test_second_stream_before_auth_ack_is_a_protocol_error(authenticating: bool) -> None:
    session = new_session()
    session.receive(CONTROL, wire(Heartbeat()), T0)
    if authenticating:
        session.receive(CONTROL, wire(AUTH, seq=1), T0)
    sent(session)
    events = session.receive(MESSAGE, wire(Heartbeat()), T0)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR, stream_id=MESSAGE)
    assert session.message_stream is None


# ------------------------------------------------------------------ active session


def test_chat_and_sync_events_carry_seq_and_stream() -> None:
    session = new_session()
    authenticate(session)
    sync = SyncRequest(since_seq=2**64 - 1, limit=50)
    assert session.receive(CONTROL, wire(CHAT, seq=10), T0) == [
        ChatReceived(10, CONTROL, CHAT, False)
    ]
    chunk = wire(CHAT, seq=11) + wire(Heartbeat(), seq=12) + wire(sync, seq=13)
    assert session.receive(MESSAGE, chunk, T0) == [
        ChatReceived(11, MESSAGE, CHAT, False),
        SyncRequested(13, MESSAGE, sync),
    ]
    assert sent(session) == [(MESSAGE, Packet(12, Heartbeat()))]
    assert session.receive(MESSAGE, wire(SyncRequest(), seq=2**64 - 1), T0) == [
        SyncRequested(2**64 - 1, MESSAGE, SyncRequest())
    ]
    # An empty-payload Sync is a SyncRequest with defaults.
    empty_sync = encode_body(14, int(MsgType.SYNC), b"")
    assert session.receive(MESSAGE, empty_sync, T0) == [SyncRequested(14, MESSAGE, SyncRequest())]
    assert session.receive(MESSAGE, wire(CHAT, seq=15), T0, early_data=True) == [
        ChatReceived(15, MESSAGE, CHAT, True)
    ]
    assert session.state is SessionState.ACTIVE


@pytest.mark.parametrize("msg_type", [3, 99, 0x7FFF])
def test_unknown_msg_type_gets_error_and_connection_stays_open(msg_type: int) -> None:
    session = new_session()
    authenticate(session)
    assert session.receive(CONTROL, encode_body(21, msg_type, b"\x01\x02"), T0) == []
    [(stream, reply)] = sent(session)
    assert stream == CONTROL
    assert reply.seq == 21
    assert isinstance(reply.body, Error)
    assert reply.body.code == Code.UNKNOWN_MSG_TYPE
    assert session.state is SessionState.ACTIVE
    assert session.close_code is None
    assert session.receive(CONTROL, wire(CHAT, seq=22), T0) == [
        ChatReceived(22, CONTROL, CHAT, False)
    ]


@pytest.mark.parametrize(
    "body",
    [ACK, MessageAck("m"), SyncResponse(), Kick(1), Error(1), Notice(NoticeKind.INFO)],
    ids=lambda b: type(b).__name__,
)
def test_server_only_types_from_client_get_unknown_msg_type(body: Body) -> None:
    session = new_session()
    authenticate(session)
    assert session.receive(MESSAGE, wire(body, seq=30), T0) == []
    [(stream, reply)] = sent(session)
    assert (stream, reply.seq) == (MESSAGE, 30)
    assert isinstance(reply.body, Error)
    assert reply.body.code == Code.UNKNOWN_MSG_TYPE
    assert session.state is SessionState.ACTIVE


def test_second_auth_is_already_authenticated() -> None:
    session = new_session()
    authenticate(session)
    for stream in (CONTROL, MESSAGE):
        assert session.receive(stream, wire(AUTH, seq=31), T0) == []
        [(out_stream, reply)] = sent(session)
        assert (out_stream, reply.seq) == (stream, 31)
        assert isinstance(reply.body, Error)
        assert reply.body.code == Code.ALREADY_AUTHENTICATED
    assert session.state is SessionState.ACTIVE
    assert session.user_id == 77


# ------------------------------------------------------------------ broken frames


@pytest.mark.parametrize("authenticated", [False, True])
def test_oversized_frame_is_refused_on_its_length(authenticated: bool) -> None:
    session = new_session()
    stream = CONTROL
    if authenticated:
        authenticate(session)
        stream = MESSAGE
    # One byte over the limit is refused on the four length bytes alone.
    assert session.receive(stream, struct.pack(">I", MAX_FRAME + 1)[:3], T0) == []
    events = session.receive(stream, struct.pack(">I", MAX_FRAME + 1)[3:], T0)
    assert_closed_with(session, events, Code.FRAME_TOO_LARGE, stream_id=stream)


def test_frame_at_the_size_limit_is_accepted() -> None:
    session = new_session()
    authenticate(session)
    # Packets are padded to 8 bytes, so only some lengths are reachable; MAX_FRAME is one.
    for size in range(MAX_FRAME):
        big = ChatMessage(msg_id="big", content="x" * size)
        data = wire(big, seq=1)
        if struct.unpack(">I", data[:4])[0] == MAX_FRAME:
            break
    else:
        pytest.fail("no ChatMessage of exactly MAX_FRAME")
    assert session.receive(CONTROL, data, T0) == [ChatReceived(1, CONTROL, big, False)]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x01\x00",  # length below 2
        b"\x00\x00\x00\x00",  # length 0
        encode_frame(int(MsgType.MESSAGE), b"\xde\xad\xbe\xef" * 4),  # body not a Packet
        encode_frame(int(MsgType.AUTH), b""),  # empty body
        # header says Message, the Packet says Heartbeat
        encode_frame(int(MsgType.MESSAGE), wire(Heartbeat(), seq=1)[6:]),
        # a valid Packet whose ChatMessage payload is garbage
        encode_body(1, int(MsgType.MESSAGE), b"\xff" * 12),
    ],
    ids=["length1", "length0", "not-a-packet", "empty-body", "type-mismatch", "bad-payload"],
)
@pytest.mark.parametrize("authenticated", [False, True])
def test_garbage_closes_with_malformed_frame(garbage: bytes, authenticated: bool) -> None:
    session = new_session()
    if authenticated:
        authenticate(session)
    events = session.receive(CONTROL, garbage, T0)
    assert_closed_with(session, events, Code.MALFORMED_FRAME)


def test_frames_after_a_violation_in_the_same_chunk_are_dropped() -> None:
    session = new_session()
    events = session.receive(CONTROL, wire(CHAT, seq=1) + wire(AUTH, seq=2), T0)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR)


# ------------------------------------------------------------------ timers


def test_auth_deadline() -> None:
    session = new_session()
    assert session.next_deadline() == T0 + AUTH_DEADLINE
    session.receive(CONTROL, wire(Heartbeat(), seq=1), T0 + 5)
    sent(session)
    # Heartbeats do not extend the time allowed to authenticate.
    assert session.next_deadline() == T0 + AUTH_DEADLINE
    assert session.check_timers(T0 + AUTH_DEADLINE - 0.001) == []
    assert session.state is SessionState.AWAITING_AUTH
    events = session.check_timers(T0 + AUTH_DEADLINE)
    assert len(events) == 1
    assert isinstance(events[0], CloseRequested)
    assert events[0].code is Code.AUTH_TIMEOUT
    assert session.state is SessionState.CLOSED
    assert session.close_code is Code.AUTH_TIMEOUT
    [(stream, kick)] = sent(session)
    assert stream == CONTROL
    assert isinstance(kick.body, Kick)
    assert kick.body.code == Code.AUTH_TIMEOUT
    assert session.next_deadline() is None
    assert session.check_timers(T0 + 1000) == []


def test_auth_deadline_while_authenticating() -> None:
    session = new_session()
    session.receive(CONTROL, wire(AUTH, seq=1), T0 + 9)
    assert session.next_deadline() == T0 + AUTH_DEADLINE
    [close] = session.check_timers(T0 + AUTH_DEADLINE + 1)
    assert isinstance(close, CloseRequested)
    assert close.code is Code.AUTH_TIMEOUT
    # The adapter's late verdict changes nothing.
    session.accept_auth(1, ACK)
    [(_, kick)] = sent(session)
    assert isinstance(kick.body, Kick)
    assert session.state is SessionState.CLOSED


def test_auth_deadline_without_any_stream_sends_nothing() -> None:
    session = new_session()
    [close] = session.check_timers(T0 + AUTH_DEADLINE)
    assert isinstance(close, CloseRequested)
    assert close.code is Code.AUTH_TIMEOUT
    assert sent(session) == []


def test_heartbeat_timeout_is_pushed_by_activity() -> None:
    session = new_session()
    authenticate(session, now=T0 + 1)
    assert session.next_deadline() == T0 + 1 + HEARTBEAT_TIMEOUT
    assert session.check_timers(T0 + AUTH_DEADLINE + 5) == []  # auth deadline no longer applies

    session.receive(CONTROL, wire(Heartbeat(), seq=2), T0 + 20)
    assert session.next_deadline() == T0 + 20 + HEARTBEAT_TIMEOUT
    assert session.check_timers(T0 + 1 + HEARTBEAT_TIMEOUT) == []

    # Any frame counts, on any stream.
    session.receive(MESSAGE, wire(CHAT, seq=3), T0 + 40)
    assert session.next_deadline() == T0 + 40 + HEARTBEAT_TIMEOUT
    assert session.check_timers(T0 + 40 + HEARTBEAT_TIMEOUT - 0.001) == []
    sent(session)

    events = session.check_timers(T0 + 40 + HEARTBEAT_TIMEOUT)
    assert len(events) == 1
    assert isinstance(events[0], CloseRequested)
    assert events[0].code is Code.HEARTBEAT_TIMEOUT
    [(stream, kick)] = sent(session)
    assert stream == CONTROL  # the Kick always goes on the control stream
    assert kick.body == Kick(int(Code.HEARTBEAT_TIMEOUT), events[0].reason)
    assert session.close_code is Code.HEARTBEAT_TIMEOUT
    assert session.next_deadline() is None


# ------------------------------------------------------------------ closed


def test_after_close_input_is_ignored() -> None:
    session = new_session()
    authenticate(session)
    session.receive(MESSAGE, wire(Heartbeat()), T0)
    sent(session)
    close = session.kick(Code.KICKED_BY_ADMIN, "admin")
    assert close == CloseRequested(Code.KICKED_BY_ADMIN, "admin")
    assert sent(session) == [(CONTROL, Packet(0, Kick(int(Code.KICKED_BY_ADMIN), "admin")))]

    assert session.receive(CONTROL, wire(CHAT, seq=1), T0) == []
    assert session.receive(MESSAGE, wire(Heartbeat(), seq=2), T0) == []
    assert session.receive(THIRD, b"\x00\x00\x00\x00garbage", T0) == []
    session.push(CHAT)
    session.reply(CONTROL, 3, MessageAck("m"))
    session.accept_auth(1, ACK)
    assert sent(session) == []
    assert session.check_timers(T0 + 10_000) == []
    assert session.next_deadline() is None
    assert session.state is SessionState.CLOSED
    assert session.close_code is Code.KICKED_BY_ADMIN


def test_drain_when_active_sends_a_drain_notice_on_the_message_stream() -> None:
    session = new_session()
    authenticate(session)
    session.receive(MESSAGE, wire(Heartbeat()), T0)
    sent(session)
    assert session.announce_drain(1500, "node draining") is None
    assert sent(session) == [
        (MESSAGE, Packet(0, Notice(NoticeKind.DRAIN, int(Code.DRAINING), "node draining", 1500)))
    ]
    # still open: the client finishes what it has in flight and leaves on its own
    assert session.state is SessionState.ACTIVE
    session.receive(MESSAGE, wire(Heartbeat(), seq=9), T0)
    assert [p.seq for _, p in sent(session)] == [9]
    close = session.kick(Code.DRAINING, "drain deadline reached")
    assert close == CloseRequested(Code.DRAINING, "drain deadline reached")
    assert session.close_code is Code.DRAINING


def test_drain_before_auth_kicks_on_the_control_stream() -> None:
    session = new_session()
    session.receive(CONTROL, wire(AUTH, seq=1), T0)
    close = session.announce_drain(1500, "node draining")
    assert close == CloseRequested(Code.DRAINING, "node draining")
    assert sent(session) == [(CONTROL, Packet(0, Kick(int(Code.DRAINING), "node draining")))]
    assert session.state is SessionState.CLOSED


# ------------------------------------------------------------------ fixed defects


@pytest.mark.parametrize("authenticating", [False, True])
def test_unknown_msg_type_before_auth_ack_is_a_protocol_error(authenticating: bool) -> None:
    session = new_session()
    if authenticating:
        session.receive(CONTROL, wire(AUTH, seq=1), T0)
    events = session.receive(CONTROL, encode_body(2, 99, b""), T0)
    assert_closed_with(session, events, Code.PROTOCOL_ERROR)


def test_outcomes_after_close_keep_the_first_close_code() -> None:
    session = new_session()
    session.receive(CONTROL, wire(AUTH, seq=1), T0)
    session.check_timers(T0 + AUTH_DEADLINE)
    sent(session)
    session.reject_auth(1, Code.AUTH_INVALID_TOKEN, "bad token")
    session.kick(Code.KICKED_BY_ADMIN, "admin")
    session.announce_drain(0, "draining")
    assert sent(session) == []
    assert session.close_code is Code.AUTH_TIMEOUT
