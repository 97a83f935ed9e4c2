"""FlatBuffers ⇄ typed messages. The only module that imports the generated code.

A frame's body is a ``Packet`` whose ``payload`` is the type's own table as a nested
FlatBuffer. Flat tables (all but SyncResponse) go through :mod:`.flat`, a one-pass
``struct`` writer and bounds-checked reader that is 10-20x faster than the FlatBuffers
runtime; :data:`TABLE_FIELDS` lists their fields by schema slot (a test checks it
against the generated code). SyncResponse, a vector of tables, uses the generated code.
Decoding treats *any* exception (bad offsets, truncated buffers, invalid UTF-8, an
out-of-range enum) as a malformed frame: garbage from one client becomes a
:class:`MalformedFrame` for that client and nothing else.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

import flatbuffers

from ._generated import message_generated as fb
from .codes import Code
from .errors import MalformedFrame, ProtocolError
from .flat import Kind, TableReader, write_table
from .framing import Frame, encode_frame
from .messages import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Delivery,
    Error,
    FileAck,
    FileHeader,
    FileOffer,
    FileRequest,
    Heartbeat,
    Kick,
    MessageAck,
    MsgType,
    Notice,
    NoticeKind,
    Packet,
    SyncRequest,
    SyncResponse,
)

__all__ = [
    "UnknownMsgType",
    "decode_frame",
    "decode_table",
    "encode_body",
    "encode_packet",
    "encode_table",
    "read_envelope",
]


class UnknownMsgType(ProtocolError):
    """A well-formed packet of a type this side does not handle. Not fatal."""

    code = Code.UNKNOWN_MSG_TYPE

    def __init__(self, msg_type: int, seq: int) -> None:
        super().__init__(f"unknown msg_type {msg_type}")
        self.msg_type = msg_type
        self.seq = seq


# ---------------------------------------------------------------------------- encode

B = TypeVar("B")


def _finish(builder: flatbuffers.Builder, root: int) -> bytes:
    builder.Finish(root)
    return bytes(builder.Output())


def _strings(builder: flatbuffers.Builder, *values: str) -> list[int]:
    return [builder.CreateString(v) for v in values]


def _build_chat(b: flatbuffers.Builder, m: ChatMessage) -> int:
    msg_id, content = _strings(b, m.msg_id, m.content)
    fb.ChatMessageStart(b)
    fb.ChatMessageAddMsgId(b, msg_id)
    fb.ChatMessageAddFromUser(b, m.from_user)
    fb.ChatMessageAddToUser(b, m.to_user)
    fb.ChatMessageAddContent(b, content)
    fb.ChatMessageAddContentType(b, m.content_type)
    fb.ChatMessageAddTimestamp(b, m.timestamp)
    fb.ChatMessageAddSeq(b, m.seq)
    fb.ChatMessageAddDelivery(b, int(m.delivery))
    fb.ChatMessageAddGroupId(b, m.group_id)
    return int(fb.ChatMessageEnd(b))


TABLE_FIELDS: dict[type, tuple[tuple[int, Kind, str], ...]] = {
    AuthRequest: ((0, "str", "token"), (1, "str", "device_id"), (2, "str", "platform")),
    AuthResponse: (
        (0, "i32", "code"),
        (1, "i64", "user_id"),
        (2, "str", "message"),
        (3, "u64", "conn_id"),
        (4, "str", "node_id"),
        (5, "u32", "heartbeat_interval_ms"),
        (6, "u32", "heartbeat_timeout_ms"),
    ),
    ChatMessage: (
        (0, "str", "msg_id"),
        (1, "i64", "from_user"),
        (2, "i64", "to_user"),
        (3, "str", "content"),
        (4, "i32", "content_type"),
        (5, "u64", "timestamp"),
        (6, "u64", "seq"),
        (7, "i8", "delivery"),
        (8, "i64", "group_id"),
    ),
    MessageAck: (
        (0, "str", "msg_id"),
        (1, "i32", "code"),
        (2, "u64", "server_seq"),
        (3, "u64", "timestamp"),
        (4, "bool", "duplicate"),
    ),
    SyncRequest: ((0, "u64", "since_seq"), (1, "u32", "limit")),
    Kick: ((0, "i32", "code"), (1, "str", "reason")),
    Error: ((0, "i32", "code"), (1, "str", "message")),
    Notice: (
        (0, "i16", "kind"),
        (1, "i32", "code"),
        (2, "str", "message"),
        (3, "u32", "reconnect_after_ms"),
    ),
    FileOffer: (
        (0, "str", "msg_id"),
        (1, "i64", "to_user"),
        (2, "str", "name"),
        (3, "u64", "size"),
        (4, "str", "mime_type"),
        (5, "bytes", "sha256"),
    ),
    FileAck: (
        (0, "i32", "code"),
        (1, "str", "message"),
        (2, "str", "file_id"),
        (3, "str", "msg_id"),
        (4, "u64", "server_seq"),
        (5, "u64", "timestamp"),
    ),
    FileRequest: ((0, "str", "file_id"), (1, "u64", "offset")),
    FileHeader: (
        (0, "i32", "code"),
        (1, "str", "message"),
        (2, "str", "file_id"),
        (3, "str", "name"),
        (4, "u64", "size"),
        (5, "str", "mime_type"),
        (6, "bytes", "sha256"),
        (7, "u64", "offset"),
    ),
}
"""Each flat table's fields: ``(schema slot, kind, dataclass attribute)``."""

_ENUMS: dict[str, type[IntEnum]] = {"delivery": Delivery, "kind": NoticeKind}
_BY_TYPE: dict[int, tuple[type, tuple[tuple[int, Kind, str], ...]]] = {
    int(getattr(cls, "msg_type")): (cls, fields)  # noqa: B009 - a class attribute of each
    for cls, fields in TABLE_FIELDS.items()
}


def _encode_table(body: Body) -> bytes:
    fields = TABLE_FIELDS.get(type(body))
    if fields is not None:
        return write_table([(slot, kind, getattr(body, name)) for slot, kind, name in fields])
    match body:
        case Heartbeat():
            return b""
        case SyncResponse():
            b = flatbuffers.Builder(256)
            offsets = [_build_chat(b, m) for m in body.messages]
            fb.SyncResponseStartMessagesVector(b, len(offsets))
            for offset in reversed(offsets):
                b.PrependUOffsetTRelative(offset)
            vector = b.EndVector()
            fb.SyncResponseStart(b)
            fb.SyncResponseAddCode(b, body.code)
            fb.SyncResponseAddMessages(b, vector)
            fb.SyncResponseAddMaxSeq(b, body.max_seq)
            fb.SyncResponseAddHasMore(b, body.has_more)
            return _finish(b, fb.SyncResponseEnd(b))
    raise TypeError(f"not a message body: {body!r}")


def encode_table(body: Body) -> bytes:
    """The body's own table as a standalone FlatBuffer (a Packet's payload).

    Also the encoding of messages on internal hops (NATS envelopes, Redis inboxes).
    """
    return _encode_table(body)


def decode_table(msg_type: int, payload: bytes | memoryview) -> Body:
    """Inverse of :func:`encode_table`; raises MalformedFrame on bytes that do not decode."""
    if msg_type not in _KNOWN_TYPES:
        raise UnknownMsgType(msg_type, 0)
    view = memoryview(payload)
    if not view and msg_type in _EMPTY_OK:
        return Heartbeat() if msg_type == MsgType.HEARTBEAT else SyncRequest()
    try:
        return _decode_table(msg_type, view)
    except ProtocolError:
        raise
    except Exception as exc:
        raise MalformedFrame(f"{MsgType(msg_type).name} payload does not decode: {exc}") from None


def encode_body(seq: int, msg_type: int, payload: bytes, timestamp: int = 0) -> bytes:
    """A whole frame around an already-encoded payload table (for forwarding as-is)."""
    signed_type = msg_type - 0x10000 if msg_type >= 0x8000 else msg_type
    body = write_table(
        [(0, "u64", seq), (1, "i16", signed_type), (2, "u64", timestamp), (3, "bytes", payload)]
    )
    return encode_frame(msg_type, body)


def encode_packet(packet: Packet) -> bytes:
    """The frame for ``packet``: header plus Packet body, ready for a stream."""
    return encode_body(
        packet.seq, int(packet.body.msg_type), _encode_table(packet.body), packet.timestamp
    )


# ---------------------------------------------------------------------------- decode


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")
    return str(value)


def _chat(t: Any) -> ChatMessage:
    return ChatMessage(
        msg_id=_text(t.MsgId()),
        from_user=t.FromUser(),
        to_user=t.ToUser(),
        content=_text(t.Content()),
        content_type=t.ContentType(),
        timestamp=t.Timestamp(),
        seq=t.Seq(),
        delivery=Delivery(t.Delivery()),
        group_id=t.GroupId(),
    )


def _root(cls: Any, buf: memoryview) -> Any:
    TableReader(buf)  # checks the root and vtable offsets the runtime would trust
    return cls.GetRootAs(buf, 0)


def _sync_response(t: Any, buf: memoryview) -> SyncResponse:
    count = t.MessagesLength()
    if count * 4 > len(buf):
        raise MalformedFrame("message vector longer than the payload")
    return SyncResponse(
        code=t.Code(),
        messages=tuple(_chat(t.Messages(i)) for i in range(count)),
        max_seq=t.MaxSeq(),
        has_more=bool(t.HasMore()),
    )


def _decode_table(msg_type: int, buf: memoryview) -> Body:
    """The table of ``msg_type`` in ``buf``; any exception means the bytes are malformed."""
    if msg_type == MsgType.HEARTBEAT:
        return Heartbeat()
    if msg_type == MsgType.SYNC_ACK:
        return _sync_response(_root(fb.SyncResponse, buf), buf)
    cls, fields = _BY_TYPE[msg_type]
    table = TableReader(buf)
    values: dict[str, Any] = {}
    for slot, kind, name in fields:
        if kind == "str":
            values[name] = table.string(slot)
        elif kind == "bytes":
            values[name] = bytes(table.bytes_view(slot))
        else:
            value = table.scalar(slot, kind)
            enum = _ENUMS.get(name)
            values[name] = enum(value) if enum else bool(value) if kind == "bool" else value
    return cls(**values)  # type: ignore[no-any-return]


_KNOWN_TYPES = frozenset(int(t) for t in MsgType)
_EMPTY_OK = frozenset({MsgType.HEARTBEAT, MsgType.SYNC})


def read_envelope(frame: Frame) -> tuple[int, int, memoryview]:
    """``(seq, timestamp, payload)`` of a frame's Packet, checking the type matches.

    The cheap half of decoding, for a path that forwards the payload untouched.
    """
    table = TableReader(frame.body)
    seq = table.scalar(0, "u64")
    msg_type = table.scalar(1, "i16")
    timestamp = table.scalar(2, "u64")
    payload = table.bytes_view(3)
    if msg_type & 0xFFFF != frame.msg_type:  # the header is u16, Packet.msg_type int16
        raise MalformedFrame(
            f"header msg_type {frame.msg_type} differs from Packet.msg_type {msg_type}"
        )
    return seq, timestamp, payload


def decode_frame(frame: Frame) -> Packet:
    """The typed Packet in ``frame``.

    Raises MalformedFrame for a body that does not decode, and UnknownMsgType (with the
    packet's seq, so the reply can echo it) for a well-formed packet of an unknown type.
    """
    seq, timestamp, payload = read_envelope(frame)
    if frame.msg_type not in _KNOWN_TYPES:
        raise UnknownMsgType(frame.msg_type, seq)
    return Packet(seq, decode_table(frame.msg_type, payload), timestamp)
