"""Typed messages: one small frozen dataclass per schema table.

These are what the rest of the package speaks; only :mod:`.codec` touches the
generated FlatBuffers code. Field names and meanings follow ``schema/message.fbs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "CONTENT_TYPE_FILE",
    "AuthRequest",
    "AuthResponse",
    "Body",
    "ChatMessage",
    "Delivery",
    "Error",
    "FileAck",
    "FileHeader",
    "FileOffer",
    "FileRequest",
    "Heartbeat",
    "Kick",
    "MessageAck",
    "MsgType",
    "Notice",
    "NoticeKind",
    "Packet",
    "SyncRequest",
    "SyncResponse",
]


class MsgType(IntEnum):
    HEARTBEAT = 0
    AUTH = 1
    AUTH_ACK = 2
    MESSAGE = 10
    MESSAGE_ACK = 11
    SYNC = 20
    SYNC_ACK = 21
    KICK = 30
    ERROR = 31
    NOTICE = 32
    FILE_OFFER = 40
    FILE_ACK = 41
    FILE_REQUEST = 42
    FILE_HEADER = 43


CONTENT_TYPE_FILE = 1
"""ChatMessage.content_type of a message announcing a file; its content is the file's
JSON (PROTOCOL.md "Files")."""


class Delivery(IntEnum):
    DIRECT = 0
    GROUP = 1
    BROADCAST = 2


class NoticeKind(IntEnum):
    INFO = 0
    DRAIN = 1


@dataclass(frozen=True, slots=True)
class Heartbeat:
    msg_type = MsgType.HEARTBEAT


@dataclass(frozen=True, slots=True)
class AuthRequest:
    token: str
    device_id: str = ""
    platform: str = ""
    msg_type = MsgType.AUTH

    def __repr__(self) -> str:  # never print a token
        return (
            f"AuthRequest(token=<{len(self.token)} chars>, "
            f"device_id={self.device_id!r}, platform={self.platform!r})"
        )


@dataclass(frozen=True, slots=True)
class AuthResponse:
    code: int
    user_id: int = 0
    message: str = ""
    conn_id: int = 0
    node_id: str = ""
    heartbeat_interval_ms: int = 0
    heartbeat_timeout_ms: int = 0
    msg_type = MsgType.AUTH_ACK


@dataclass(frozen=True, slots=True)
class ChatMessage:
    msg_id: str
    from_user: int = 0
    to_user: int = 0
    content: str = ""
    content_type: int = 0
    timestamp: int = 0
    seq: int = 0
    delivery: Delivery = Delivery.DIRECT
    group_id: int = 0
    msg_type = MsgType.MESSAGE


@dataclass(frozen=True, slots=True)
class MessageAck:
    msg_id: str
    code: int = 0
    server_seq: int = 0
    timestamp: int = 0
    duplicate: bool = False
    msg_type = MsgType.MESSAGE_ACK


@dataclass(frozen=True, slots=True)
class SyncRequest:
    since_seq: int = 0
    limit: int = 0
    msg_type = MsgType.SYNC


@dataclass(frozen=True, slots=True)
class SyncResponse:
    code: int = 0
    messages: tuple[ChatMessage, ...] = field(default_factory=tuple)
    max_seq: int = 0
    has_more: bool = False
    msg_type = MsgType.SYNC_ACK


@dataclass(frozen=True, slots=True)
class Kick:
    code: int
    reason: str = ""
    msg_type = MsgType.KICK


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    message: str = ""
    msg_type = MsgType.ERROR


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    code: int = 0
    message: str = ""
    reconnect_after_ms: int = 0
    msg_type = MsgType.NOTICE


@dataclass(frozen=True, slots=True)
class FileOffer:
    msg_id: str
    to_user: int = 0
    name: str = ""
    size: int = 0
    mime_type: str = ""
    sha256: bytes = b""
    msg_type = MsgType.FILE_OFFER


@dataclass(frozen=True, slots=True)
class FileAck:
    code: int
    message: str = ""
    file_id: str = ""
    msg_id: str = ""
    server_seq: int = 0
    timestamp: int = 0
    msg_type = MsgType.FILE_ACK


@dataclass(frozen=True, slots=True)
class FileRequest:
    file_id: str
    offset: int = 0
    msg_type = MsgType.FILE_REQUEST


@dataclass(frozen=True, slots=True)
class FileHeader:
    code: int
    message: str = ""
    file_id: str = ""
    name: str = ""
    size: int = 0
    mime_type: str = ""
    sha256: bytes = b""
    offset: int = 0
    msg_type = MsgType.FILE_HEADER


Body = (
    Heartbeat
    | AuthRequest
    | AuthResponse
    | ChatMessage
    | MessageAck
    | SyncRequest
    | SyncResponse
    | Kick
    | Error
    | Notice
    | FileOffer
    | FileAck
    | FileRequest
    | FileHeader
)


@dataclass(frozen=True, slots=True)
class Packet:
    """The root table: a body plus the sender's request number and clock."""

    seq: int
    body: Body
    timestamp: int = 0

    @property
    def msg_type(self) -> MsgType:
        return self.body.msg_type
