"""FlatBuffers codec: typed messages <-> frames, and hostile input handling."""

from __future__ import annotations

import dataclasses
import inspect
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaccess.protocol import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Code,
    Delivery,
    Error,
    FileAck,
    FileHeader,
    FileOffer,
    FileRequest,
    Frame,
    FrameDecoder,
    Heartbeat,
    Kick,
    MalformedFrame,
    MessageAck,
    MsgType,
    Notice,
    NoticeKind,
    Packet,
    ProtocolError,
    SyncRequest,
    SyncResponse,
    UnknownMsgType,
    codec,
    decode_frame,
    encode_packet,
    read_envelope,
)
from imaccess.protocol._generated import message_generated as generated
from imaccess.protocol.codec import decode_table, encode_body

FAST = settings(max_examples=200, deadline=None)

# Ranges per schema/message.fbs field types.
i32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
text = st.text(max_size=40)  # any code point but lone surrogates (not encodable)

CHAT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "msg_id": text,
    "from_user": i64,
    "to_user": i64,
    "content": text,
    "content_type": i32,
    "timestamp": u64,
    "seq": u64,
    "delivery": st.sampled_from(Delivery),
    "group_id": i64,
}
chat_messages = st.builds(ChatMessage, **CHAT_FIELDS)

#: One entry per message type; every field of the dataclass gets a full-range strategy.
BODY_FIELDS: dict[type, dict[str, st.SearchStrategy[Any]]] = {
    Heartbeat: {},
    AuthRequest: {"token": text, "device_id": text, "platform": text},
    AuthResponse: {
        "code": i32,
        "user_id": i64,
        "message": text,
        "conn_id": u64,
        "node_id": text,
        "heartbeat_interval_ms": u32,
        "heartbeat_timeout_ms": u32,
    },
    ChatMessage: CHAT_FIELDS,
    MessageAck: {
        "msg_id": text,
        "code": i32,
        "server_seq": u64,
        "timestamp": u64,
        "duplicate": st.booleans(),
    },
    SyncRequest: {"since_seq": u64, "limit": u32},
    SyncResponse: {
        "code": i32,
        "messages": st.lists(chat_messages, max_size=4).map(tuple),
        "max_seq": u64,
        "has_more": st.booleans(),
    },
    Kick: {"code": i32, "reason": text},
    Error: {"code": i32, "message": text},
    Notice: {
        "kind": st.sampled_from(NoticeKind),
        "code": i32,
        "message": text,
        "reconnect_after_ms": u32,
    },
    FileOffer: {
        "msg_id": text,
        "to_user": i64,
        "name": text,
        "size": u64,
        "mime_type": text,
        "sha256": st.binary(max_size=40),
    },
    FileAck: {
        "code": i32,
        "message": text,
        "file_id": text,
        "msg_id": text,
        "server_seq": u64,
        "timestamp": u64,
    },
    FileRequest: {"file_id": text, "offset": u64},
    FileHeader: {
        "code": i32,
        "message": text,
        "file_id": text,
        "name": text,
        "size": u64,
        "mime_type": text,
        "sha256": st.binary(max_size=40),
        "offset": u64,
    },
}
BODY_TYPES = list(BODY_FIELDS)
bodies = st.one_of(*(st.builds(cls, **fields) for cls, fields in BODY_FIELDS.items()))
packets = st.builds(Packet, seq=u64, body=bodies, timestamp=u64)

KNOWN_TYPES = {int(t) for t in MsgType}
unknown_types = st.integers(min_value=0, max_value=0x7FFF).filter(lambda t: t not in KNOWN_TYPES)


def _one_frame(data: bytes) -> Frame:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert len(frames) == 1
    assert decoder.buffered == 0
    return frames[0]


def test_strategies_cover_every_message_type_and_field() -> None:
    assert set(BODY_FIELDS) == set(Body.__args__)
    for cls, fields in BODY_FIELDS.items():
        assert set(fields) == {f.name for f in dataclasses.fields(cls)}, cls.__name__
    assert {cls.msg_type for cls in BODY_FIELDS} == set(MsgType)


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("cls", BODY_TYPES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_round_trip_every_message_type(cls: type, data: st.DataObject) -> None:
    body = data.draw(st.builds(cls, **BODY_FIELDS[cls]))
    packet = data.draw(st.builds(Packet, seq=u64, body=st.just(body), timestamp=u64))
    frame = _one_frame(encode_packet(packet))
    assert frame.msg_type == int(cls.msg_type)
    decoded = decode_frame(frame)
    assert decoded == packet
    assert type(decoded.body) is cls
    assert decoded.msg_type is cls.msg_type


def test_round_trip_extremes() -> None:
    chat = ChatMessage(
        msg_id="\x00",
        from_user=-(2**63),
        to_user=2**63 - 1,
        content="\U0010ffff\x00é",
        content_type=-(2**31),
        timestamp=2**64 - 1,
        seq=2**64 - 1,
        delivery=Delivery.BROADCAST,
        group_id=-1,
    )
    for body in (
        chat,
        SyncResponse(code=2**31 - 1, messages=(chat, ChatMessage("")), max_seq=2**64 - 1),
        AuthResponse(code=-1, user_id=-(2**63), conn_id=2**64 - 1, heartbeat_interval_ms=2**32 - 1),
        SyncRequest(since_seq=2**64 - 1, limit=2**32 - 1),
        Notice(NoticeKind.DRAIN, reconnect_after_ms=2**32 - 1),
    ):
        packet = Packet(2**64 - 1, body, 2**64 - 1)
        assert decode_frame(_one_frame(encode_packet(packet))) == packet


# ------------------------------------------------------------------ golden wire bytes

GOLDEN_CHAT = ChatMessage(
    msg_id="m-1",
    from_user=-2,
    to_user=1002,
    content="hé🙂",
    content_type=3,
    timestamp=1_700_000_000_123,
    seq=2**64 - 1,
    delivery=Delivery.GROUP,
    group_id=77,
)
GOLDEN_PACKET = Packet(seq=42, body=GOLDEN_CHAT, timestamp=1_700_000_000_000)
GOLDEN_HEX = (
    "000000aa000a100000000c00240018001600080004000c000000200000000068"
    "e5cf8b0100000000000000000a002a0000000000000000000000700000001c00"
    "00000000160040003c0034002c00280024001c00140013000400160000004d00"
    "0000000000000000000000000001ffffffffffffffff7b68e5cf8b0100000300"
    "000018000000ea03000000000000feffffffffffffff100000000700000068c3"
    "a9f09f998200030000006d2d3100"
)


class _Table:
    """A minimal FlatBuffers table reader, independent of the generated code."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        vtable_size = struct.unpack_from("<H", buf, vtable)[0]
        self.slots = [
            struct.unpack_from("<H", buf, vtable + 4 + 2 * i)[0]
            for i in range((vtable_size - 4) // 2)
        ]

    @classmethod
    def root(cls, buf: bytes) -> _Table:
        return cls(buf, struct.unpack_from("<I", buf, 0)[0])

    def _at(self, field: int) -> int:
        offset = self.slots[field] if field < len(self.slots) else 0
        assert offset, f"field {field} absent"
        return self.pos + offset

    def scalar(self, field: int, fmt: str) -> int:
        return int(struct.unpack_from(fmt, self.buf, self._at(field))[0])

    def vector(self, field: int) -> bytes:
        at = self._at(field)
        start = at + struct.unpack_from("<I", self.buf, at)[0]
        length = struct.unpack_from("<I", self.buf, start)[0]
        return self.buf[start + 4 : start + 4 + length]


def test_golden_chat_message_frame() -> None:
    """The golden bytes were written by the FlatBuffers runtime (PROTOCOL.md shows them);
    our writer lays the same table out differently, and both decode alike."""
    assert decode_frame(_one_frame(bytes.fromhex(GOLDEN_HEX))) == GOLDEN_PACKET
    assert decode_frame(_one_frame(encode_packet(GOLDEN_PACKET))) == GOLDEN_PACKET


@pytest.mark.parametrize("source", ["flatbuffers-runtime", "our-writer"])
def test_golden_frame_layout_matches_schema(source: str) -> None:
    """Read the golden bytes by the schema's field ids, without the generated code."""
    raw = (
        bytes.fromhex(GOLDEN_HEX)
        if source == "flatbuffers-runtime"
        else encode_packet(GOLDEN_PACKET)
    )
    length, msg_type = struct.unpack_from(">IH", raw, 0)
    assert length == len(raw) - 4
    assert msg_type == 10  # MsgType.Message
    packet = _Table.root(raw[6:])
    assert packet.scalar(0, "<Q") == 42  # seq: uint64
    assert packet.scalar(1, "<h") == 10  # msg_type: MsgType (short)
    assert packet.scalar(2, "<Q") == 1_700_000_000_000  # timestamp: uint64
    chat = _Table.root(packet.vector(3))  # payload: [ubyte], a nested ChatMessage
    assert chat.vector(0) == b"m-1"  # msg_id
    assert chat.scalar(1, "<q") == -2  # from_user: int64
    assert chat.scalar(2, "<q") == 1002  # to_user: int64
    assert chat.vector(3) == "hé🙂".encode()  # content
    assert chat.scalar(4, "<i") == 3  # content_type: int
    assert chat.scalar(5, "<Q") == 1_700_000_000_123  # timestamp: uint64
    assert chat.scalar(6, "<Q") == 2**64 - 1  # seq: uint64
    assert chat.scalar(7, "<b") == 1  # delivery: Delivery (byte), Group
    assert chat.scalar(8, "<q") == 77  # group_id: int64


# ------------------------------------------------------------------ envelope


def test_header_and_packet_msg_type_mismatch_is_malformed() -> None:
    frame = _one_frame(encode_packet(Packet(5, GOLDEN_CHAT)))
    forged = Frame(int(MsgType.AUTH), frame.body)
    with pytest.raises(MalformedFrame) as info:
        decode_frame(forged)
    assert info.value.code is Code.MALFORMED_FRAME
    with pytest.raises(MalformedFrame):
        read_envelope(forged)
    # The same through the wire: rewrite the u16 in the header.
    wire = bytearray(encode_packet(Packet(5, GOLDEN_CHAT)))
    wire[4:6] = struct.pack(">H", int(MsgType.HEARTBEAT))
    with pytest.raises(MalformedFrame):
        decode_frame(_one_frame(bytes(wire)))


@FAST
@given(packet=packets, header_type=st.integers(min_value=0, max_value=0xFFFF))
def test_any_mismatched_header_type_is_malformed(packet: Packet, header_type: int) -> None:
    frame = _one_frame(encode_packet(packet))
    if header_type == frame.msg_type:
        return
    with pytest.raises(MalformedFrame):
        decode_frame(Frame(header_type, frame.body))


@FAST
@given(msg_type=unknown_types, seq=u64, timestamp=u64, payload=st.binary(max_size=64))
def test_unknown_msg_type_with_valid_packet_carries_seq(
    msg_type: int, seq: int, timestamp: int, payload: bytes
) -> None:
    frame = _one_frame(encode_body(seq, msg_type, payload, timestamp))
    assert frame.msg_type == msg_type
    with pytest.raises(UnknownMsgType) as info:
        decode_frame(frame)
    assert info.value.seq == seq
    assert info.value.msg_type == msg_type
    assert info.value.code is Code.UNKNOWN_MSG_TYPE
    assert isinstance(info.value, ProtocolError)
    assert not isinstance(info.value, MalformedFrame)


@pytest.mark.parametrize(
    ("msg_type", "expected"),
    [(MsgType.HEARTBEAT, Heartbeat()), (MsgType.SYNC, SyncRequest())],
)
def test_empty_payload_heartbeat_and_sync_decode(msg_type: MsgType, expected: Body) -> None:
    frame = _one_frame(encode_body(9, int(msg_type), b"", 1234))
    assert read_envelope(frame) == (9, 1234, memoryview(b""))
    assert decode_frame(frame) == Packet(9, expected, 1234)


def test_heartbeat_is_encoded_with_an_empty_payload() -> None:
    frame = _one_frame(encode_packet(Packet(3, Heartbeat())))
    seq, _, payload = read_envelope(frame)
    assert seq == 3
    assert len(payload) == 0


@pytest.mark.parametrize(
    "msg_type",
    [t for t in MsgType if t not in (MsgType.HEARTBEAT, MsgType.SYNC)],
    ids=lambda t: t.name,
)
def test_empty_payload_of_a_table_type_is_malformed(msg_type: MsgType) -> None:
    with pytest.raises(MalformedFrame):
        decode_frame(_one_frame(encode_body(1, int(msg_type), b"")))


@FAST
@given(packet=packets)
def test_read_envelope_payload_is_the_nested_table(packet: Packet) -> None:
    wire = encode_packet(packet)
    frame = _one_frame(wire)
    seq, timestamp, payload = read_envelope(frame)
    assert (seq, timestamp) == (packet.seq, packet.timestamp)
    assert bytes(payload) == codec._encode_table(packet.body)
    # Forwarding the payload untouched rebuilds the identical frame.
    assert encode_body(seq, frame.msg_type, bytes(payload), timestamp) == wire


@FAST
@given(
    msg_type=st.integers(min_value=0, max_value=0x7FFF),
    seq=u64,
    timestamp=u64,
    payload=st.binary(max_size=300),
)
def test_read_envelope_returns_payload_bytes_verbatim(
    msg_type: int, seq: int, timestamp: int, payload: bytes
) -> None:
    frame = _one_frame(encode_body(seq, msg_type, payload, timestamp))
    got_seq, got_timestamp, got_payload = read_envelope(frame)
    assert (got_seq, got_timestamp) == (seq, timestamp)
    assert bytes(got_payload) == payload


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x00" * 7])
def test_body_too_short_for_a_packet_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedFrame):
        read_envelope(Frame(int(MsgType.MESSAGE), body))
    with pytest.raises(MalformedFrame):
        decode_frame(Frame(int(MsgType.MESSAGE), body))


@pytest.mark.parametrize(
    "body",
    [
        b"\x00" * 8,  # root at 0, vtable at 0 of size 0: the runtime would read defaults
        b"\x04\x00\x00\x00" + b"\xff\xff\x00\x00",  # vtable offset past the end
        b"\x04\x00\x00\x00\x04\x00\x00\x00\x03\x00\x04\x00",  # odd vtable size
    ],
)
def test_a_table_with_an_impossible_vtable_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedFrame):
        decode_frame(Frame(int(MsgType.HEARTBEAT), body))
    with pytest.raises(MalformedFrame):  # the same check guards the nested table
        decode_table(int(MsgType.MESSAGE), body)


# ------------------------------------------------------------------ hostile input


def _decode_or_protocol_error(frame: Frame) -> None:
    """decode_frame may succeed or raise a protocol error; anything else is a bug."""
    try:
        result = decode_frame(frame)
    except (MalformedFrame, UnknownMsgType):
        return
    assert isinstance(result, Packet)
    assert result.msg_type == frame.msg_type


@FAST
@given(
    msg_type=st.sampled_from([int(t) for t in MsgType]) | st.integers(0, 0xFFFF),
    body=st.binary(max_size=300),
)
def test_garbage_bodies_raise_only_protocol_errors(msg_type: int, body: bytes) -> None:
    _decode_or_protocol_error(Frame(msg_type, body))


@FAST
@given(
    msg_type=st.sampled_from([int(t) for t in MsgType]),
    payload=st.binary(max_size=300),
    seq=u64,
)
def test_garbage_payload_in_a_valid_packet_is_malformed_or_decodes(
    msg_type: int, payload: bytes, seq: int
) -> None:
    frame = _one_frame(encode_body(seq, msg_type, payload))
    try:
        packet = decode_frame(frame)
    except MalformedFrame:
        return
    assert packet.seq == seq
    assert packet.msg_type == msg_type


@FAST
@given(packet=packets, data=st.data())
def test_corrupted_valid_frames_raise_only_protocol_errors(
    packet: Packet, data: st.DataObject
) -> None:
    body = bytearray(_one_frame(encode_packet(packet)).body)
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[index] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    _decode_or_protocol_error(Frame(int(packet.msg_type), bytes(body[:cut])))
    _decode_or_protocol_error(Frame(int(packet.msg_type), bytes(body)))


def test_invalid_utf8_string_is_malformed() -> None:
    wire = encode_packet(Packet(1, AuthRequest(token="tok\x7f")))
    corrupted = wire.replace(b"tok\x7f", b"tok\xff")
    assert corrupted != wire
    with pytest.raises(MalformedFrame):
        decode_frame(_one_frame(corrupted))


def test_out_of_range_enum_is_malformed() -> None:
    # Delivery is the only int8 field set to 1 in this payload; make it 7.
    chat = ChatMessage("x", delivery=Delivery.GROUP)
    payload = bytearray(codec._encode_table(chat))
    table = _Table.root(bytes(payload))
    payload[table.pos + table.slots[7]] = 7
    with pytest.raises(MalformedFrame):
        decode_frame(_one_frame(encode_body(1, int(MsgType.MESSAGE), bytes(payload))))


def test_auth_request_repr_hides_the_token() -> None:
    request = AuthRequest(token="secret.jwt.value", device_id="d1", platform="ios")
    assert "secret" not in repr(request)
    assert "d1" in repr(request)


# ------------------------------------------------------------ the fast table writer


def _generated_slots() -> dict[str, dict[int, str]]:
    """Each table's fields as the generated code writes them: ``{table: {slot: Prepend*}}``."""
    source = inspect.getsource(generated)
    found: dict[str, dict[int, str]] = {}
    for table, kind, slot in re.findall(
        r"def (\w+?)Add\w+\(builder, \w+\):\n\s+builder\.Prepend(\w+?)Slot\((\d+),", source
    ):
        found.setdefault(table, {})[int(slot)] = kind
    return found


_WRITER_KIND = {
    "str": "UOffsetTRelative",
    "bytes": "UOffsetTRelative",
    "bool": "Bool",
    "i8": "Int8",
    "u8": "Uint8",
    "i16": "Int16",
    "u16": "Uint16",
    "i32": "Int32",
    "u32": "Uint32",
    "i64": "Int64",
    "u64": "Uint64",
}


def test_every_flat_table_spec_matches_the_generated_code() -> None:
    generated_slots = _generated_slots()
    assert set(codec.TABLE_FIELDS) | {SyncResponse, Heartbeat} == set(BODY_FIELDS)
    for cls, fields in codec.TABLE_FIELDS.items():
        assert {slot: _WRITER_KIND[kind] for slot, kind, _ in fields} == generated_slots[
            cls.__name__
        ], cls.__name__
        assert sorted(name for _, _, name in fields) == sorted(
            f.name for f in dataclasses.fields(cls)
        )


@FAST
@given(packet=packets)
def test_the_generated_runtime_reads_what_our_writer_writes(packet: Packet) -> None:
    frame = _one_frame(encode_packet(packet))
    root = generated.Packet.GetRootAs(frame.body, 0)
    assert (root.Seq(), root.Timestamp()) == (packet.seq, packet.timestamp)
    payload = bytes(root.Payload(i) for i in range(root.PayloadLength()))
    body = packet.body
    if isinstance(body, Heartbeat | SyncResponse):
        return
    table = getattr(generated, type(body).__name__).GetRootAs(payload, 0)
    for slot, kind, name in codec.TABLE_FIELDS[type(body)]:
        accessor = getattr(table, "".join(part.title() for part in name.split("_")))
        if kind == "bytes":
            got = bytes(accessor(i) for i in range(getattr(table, f"{accessor.__name__}Length")()))
        else:
            got = accessor()
        if kind == "str":
            got = (got or b"").decode()
        assert got == getattr(body, name), (slot, name)
