"""FlatBuffers ⇄ typed messages. The only module that imports the generated code.

A frame's body is a ``Packet`` whose ``payload`` is the type's own table as a nested
FlatBuffer. The Python FlatBuffers runtime has no verifier, so decoding treats *any*
exception from the generated accessors (bad offsets, truncated buffers, invalid UTF-8)
as a malformed frame: garbage from one client becomes a :class:`MalformedFrame` for that
client and nothing else.

The payload vector is read as a ``memoryview`` slice: the generated per-element
``Payload(j)`` accessor costs milliseconds per KiB.
"""

from __future__ import annotations

from typing import Any, TypeVar

import flatbuffers

from ._generated import message_generated as fb
from .codes import Code
from .errors import MalformedFrame, ProtocolError
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

_PACKET_PAYLOAD_SLOT = 10  # vtable offset of Packet.payload (4 + 2 * field index)


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


def _encode_table(body: Body) -> bytes:
    b = flatbuffers.Builder(64)
    match body:
        case Heartbeat():
            return b""
        case AuthRequest(token, device_id, platform):
            t, d, p = _strings(b, token, device_id, platform)
            fb.AuthRequestStart(b)
            fb.AuthRequestAddToken(b, t)
            fb.AuthRequestAddDeviceId(b, d)
            fb.AuthRequestAddPlatform(b, p)
            return _finish(b, fb.AuthRequestEnd(b))
        case AuthResponse():
            message, node_id = _strings(b, body.message, body.node_id)
            fb.AuthResponseStart(b)
            fb.AuthResponseAddCode(b, body.code)
            fb.AuthResponseAddUserId(b, body.user_id)
            fb.AuthResponseAddMessage(b, message)
            fb.AuthResponseAddConnId(b, body.conn_id)
            fb.AuthResponseAddNodeId(b, node_id)
            fb.AuthResponseAddHeartbeatIntervalMs(b, body.heartbeat_interval_ms)
            fb.AuthResponseAddHeartbeatTimeoutMs(b, body.heartbeat_timeout_ms)
            return _finish(b, fb.AuthResponseEnd(b))
        case ChatMessage():
            return _finish(b, _build_chat(b, body))
        case MessageAck():
            (msg_id,) = _strings(b, body.msg_id)
            fb.MessageAckStart(b)
            fb.MessageAckAddMsgId(b, msg_id)
            fb.MessageAckAddCode(b, body.code)
            fb.MessageAckAddServerSeq(b, body.server_seq)
            fb.MessageAckAddTimestamp(b, body.timestamp)
            fb.MessageAckAddDuplicate(b, body.duplicate)
            return _finish(b, fb.MessageAckEnd(b))
        case SyncRequest(since_seq, limit):
            fb.SyncRequestStart(b)
            fb.SyncRequestAddSinceSeq(b, since_seq)
            fb.SyncRequestAddLimit(b, limit)
            return _finish(b, fb.SyncRequestEnd(b))
        case SyncResponse():
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
        case Kick(code, reason):
            (r,) = _strings(b, reason)
            fb.KickStart(b)
            fb.KickAddCode(b, code)
            fb.KickAddReason(b, r)
            return _finish(b, fb.KickEnd(b))
        case Error(code, message):
            (m,) = _strings(b, message)
            fb.ErrorStart(b)
            fb.ErrorAddCode(b, code)
            fb.ErrorAddMessage(b, m)
            return _finish(b, fb.ErrorEnd(b))
        case Notice(kind, code, message, reconnect_after_ms):
            (m,) = _strings(b, message)
            fb.NoticeStart(b)
            fb.NoticeAddKind(b, int(kind))
            fb.NoticeAddCode(b, code)
            fb.NoticeAddMessage(b, m)
            fb.NoticeAddReconnectAfterMs(b, reconnect_after_ms)
            return _finish(b, fb.NoticeEnd(b))
        case FileOffer():
            msg_id, name, mime = _strings(b, body.msg_id, body.name, body.mime_type)
            digest = b.CreateByteVector(body.sha256)
            fb.FileOfferStart(b)
            fb.FileOfferAddMsgId(b, msg_id)
            fb.FileOfferAddToUser(b, body.to_user)
            fb.FileOfferAddName(b, name)
            fb.FileOfferAddSize(b, body.size)
            fb.FileOfferAddMimeType(b, mime)
            fb.FileOfferAddSha256(b, digest)
            return _finish(b, fb.FileOfferEnd(b))
        case FileAck():
            message, file_id, msg_id = _strings(b, body.message, body.file_id, body.msg_id)
            fb.FileAckStart(b)
            fb.FileAckAddCode(b, body.code)
            fb.FileAckAddMessage(b, message)
            fb.FileAckAddFileId(b, file_id)
            fb.FileAckAddMsgId(b, msg_id)
            fb.FileAckAddServerSeq(b, body.server_seq)
            fb.FileAckAddTimestamp(b, body.timestamp)
            return _finish(b, fb.FileAckEnd(b))
        case FileRequest(file_id, offset):
            (f,) = _strings(b, file_id)
            fb.FileRequestStart(b)
            fb.FileRequestAddFileId(b, f)
            fb.FileRequestAddOffset(b, offset)
            return _finish(b, fb.FileRequestEnd(b))
        case FileHeader():
            message, file_id, name, mime = _strings(
                b, body.message, body.file_id, body.name, body.mime_type
            )
            digest = b.CreateByteVector(body.sha256)
            fb.FileHeaderStart(b)
            fb.FileHeaderAddCode(b, body.code)
            fb.FileHeaderAddMessage(b, message)
            fb.FileHeaderAddFileId(b, file_id)
            fb.FileHeaderAddName(b, name)
            fb.FileHeaderAddSize(b, body.size)
            fb.FileHeaderAddMimeType(b, mime)
            fb.FileHeaderAddSha256(b, digest)
            fb.FileHeaderAddOffset(b, body.offset)
            return _finish(b, fb.FileHeaderEnd(b))
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
    b = flatbuffers.Builder(len(payload) + 48)
    vector = b.CreateByteVector(payload) if payload else None
    fb.PacketStart(b)
    fb.PacketAddSeq(b, seq)
    fb.PacketAddMsgType(b, msg_type - 0x10000 if msg_type >= 0x8000 else msg_type)
    fb.PacketAddTimestamp(b, timestamp)
    if vector is not None:
        fb.PacketAddPayload(b, vector)
    return encode_frame(msg_type, _finish(b, fb.PacketEnd(b)))


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


def _check_root(buf: bytes | memoryview) -> None:
    """The root table's vtable lies inside ``buf`` and has room for its own header.

    The flatbuffers runtime checks nothing; without this, eight zero bytes would decode
    as a table whose vtable is itself, with every field at its default.
    """
    size = len(buf)
    if size < 8:
        raise MalformedFrame("too short for a FlatBuffers table")
    table = int.from_bytes(buf[0:4], "little")
    if table + 4 > size:
        raise MalformedFrame("root table offset runs past the buffer")
    vtable = table - int.from_bytes(buf[table : table + 4], "little", signed=True)
    if vtable < 0 or vtable + 4 > size:
        raise MalformedFrame("vtable offset runs past the buffer")
    vtable_size = int.from_bytes(buf[vtable : vtable + 2], "little")
    table_size = int.from_bytes(buf[vtable + 2 : vtable + 4], "little")
    if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > size:
        raise MalformedFrame("vtable size is invalid")
    if table_size < 4 or table + table_size > size:
        raise MalformedFrame("table size is invalid")


def _root(cls: Any, buf: memoryview) -> Any:
    _check_root(buf)
    return cls.GetRootAs(buf, 0)


def _byte_vector(t: Any, slot: int) -> bytes:
    """A ``[ubyte]`` field as bytes (the per-element accessor is slow, and numpy is not a
    dependency); ``slot`` is the field's vtable offset, 4 + 2 * its index."""
    tab = t._tab
    offset = tab.Offset(slot)
    if not offset:
        return b""
    start = tab.Vector(offset)
    length = tab.VectorLen(offset)
    if start + length > len(tab.Bytes):
        raise MalformedFrame("byte vector runs past the table")
    return bytes(tab.Bytes[start : start + length])


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
    match msg_type:
        case MsgType.HEARTBEAT:
            return Heartbeat()
        case MsgType.AUTH:
            t = _root(fb.AuthRequest, buf)
            return AuthRequest(_text(t.Token()), _text(t.DeviceId()), _text(t.Platform()))
        case MsgType.AUTH_ACK:
            t = _root(fb.AuthResponse, buf)
            return AuthResponse(
                code=t.Code(),
                user_id=t.UserId(),
                message=_text(t.Message()),
                conn_id=t.ConnId(),
                node_id=_text(t.NodeId()),
                heartbeat_interval_ms=t.HeartbeatIntervalMs(),
                heartbeat_timeout_ms=t.HeartbeatTimeoutMs(),
            )
        case MsgType.MESSAGE:
            return _chat(_root(fb.ChatMessage, buf))
        case MsgType.MESSAGE_ACK:
            t = _root(fb.MessageAck, buf)
            return MessageAck(
                msg_id=_text(t.MsgId()),
                code=t.Code(),
                server_seq=t.ServerSeq(),
                timestamp=t.Timestamp(),
                duplicate=bool(t.Duplicate()),
            )
        case MsgType.SYNC:
            t = _root(fb.SyncRequest, buf)
            return SyncRequest(t.SinceSeq(), t.Limit())
        case MsgType.SYNC_ACK:
            return _sync_response(_root(fb.SyncResponse, buf), buf)
        case MsgType.KICK:
            t = _root(fb.Kick, buf)
            return Kick(t.Code(), _text(t.Reason()))
        case MsgType.ERROR:
            t = _root(fb.Error, buf)
            return Error(t.Code(), _text(t.Message()))
        case MsgType.NOTICE:
            t = _root(fb.Notice, buf)
            return Notice(NoticeKind(t.Kind()), t.Code(), _text(t.Message()), t.ReconnectAfterMs())
        case MsgType.FILE_OFFER:
            t = _root(fb.FileOffer, buf)
            return FileOffer(
                msg_id=_text(t.MsgId()),
                to_user=t.ToUser(),
                name=_text(t.Name()),
                size=t.Size(),
                mime_type=_text(t.MimeType()),
                sha256=_byte_vector(t, 14),
            )
        case MsgType.FILE_ACK:
            t = _root(fb.FileAck, buf)
            return FileAck(
                code=t.Code(),
                message=_text(t.Message()),
                file_id=_text(t.FileId()),
                msg_id=_text(t.MsgId()),
                server_seq=t.ServerSeq(),
                timestamp=t.Timestamp(),
            )
        case MsgType.FILE_REQUEST:
            t = _root(fb.FileRequest, buf)
            return FileRequest(_text(t.FileId()), t.Offset())
        case MsgType.FILE_HEADER:
            t = _root(fb.FileHeader, buf)
            return FileHeader(
                code=t.Code(),
                message=_text(t.Message()),
                file_id=_text(t.FileId()),
                name=_text(t.Name()),
                size=t.Size(),
                mime_type=_text(t.MimeType()),
                sha256=_byte_vector(t, 16),
                offset=t.Offset(),
            )
    raise AssertionError(f"no decoder for msg_type {msg_type}")


_KNOWN_TYPES = frozenset(int(t) for t in MsgType)
_EMPTY_OK = frozenset({MsgType.HEARTBEAT, MsgType.SYNC})


def read_envelope(frame: Frame) -> tuple[int, int, memoryview]:
    """``(seq, timestamp, payload)`` of a frame's Packet, checking the type matches.

    The cheap half of decoding, for a path that forwards the payload untouched.
    """
    body = frame.body
    try:
        _check_root(body)
        packet = fb.Packet.GetRootAs(body, 0)
        msg_type = packet.MsgType()
        seq = packet.Seq()
        timestamp = packet.Timestamp()
        tab = packet._tab
        slot = tab.Offset(_PACKET_PAYLOAD_SLOT)
        if slot:
            start = tab.Vector(slot)
            length = tab.VectorLen(slot)
            if start + length > len(body):
                raise MalformedFrame("payload vector runs past the body")
            payload = memoryview(body)[start : start + length]
        else:
            payload = memoryview(b"")
    except ProtocolError:
        raise
    except Exception as exc:
        raise MalformedFrame(f"body is not a Packet: {exc}") from None
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
