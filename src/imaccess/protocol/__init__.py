"""The wire protocol, free of I/O: framing, codec, typed messages, codes, session state."""

from .codec import UnknownMsgType, decode_frame, encode_packet, read_envelope
from .codes import Code, Reconnect, reconnect_for
from .errors import FrameTooLarge, MalformedFrame, ProtocolError, StreamViolation
from .framing import DEFAULT_MAX_FRAME_SIZE, Frame, FrameDecoder, encode_frame
from .messages import (
    AuthRequest,
    AuthResponse,
    Body,
    ChatMessage,
    Delivery,
    Error,
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
    "DEFAULT_MAX_FRAME_SIZE",
    "AuthRequest",
    "AuthResponse",
    "Body",
    "ChatMessage",
    "Code",
    "Delivery",
    "Error",
    "Frame",
    "FrameDecoder",
    "FrameTooLarge",
    "Heartbeat",
    "Kick",
    "MalformedFrame",
    "MessageAck",
    "MsgType",
    "Notice",
    "NoticeKind",
    "Packet",
    "ProtocolError",
    "Reconnect",
    "StreamViolation",
    "SyncRequest",
    "SyncResponse",
    "UnknownMsgType",
    "decode_frame",
    "encode_frame",
    "encode_packet",
    "read_envelope",
    "reconnect_for",
]
