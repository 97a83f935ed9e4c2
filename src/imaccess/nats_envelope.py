"""What crosses NATS between access nodes and Logic: subjects, headers and payloads.

Pure encoders and decoders (no I/O), so both sides and the tests share one definition;
``docs/INTERNALS.md`` ("NATS") documents every byte.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Mapping, Sequence

from .bus import KickEvent, Push, Upstream, UserEvent
from .protocol.codec import decode_table, encode_table
from .protocol.codes import Code
from .protocol.errors import ProtocolError
from .protocol.messages import ChatMessage, MsgType

__all__ = [
    "BROADCAST_REQUEST_SUBJECT",
    "BROADCAST_SUBJECT",
    "HEADER_CONN",
    "HEADER_MSG_ID",
    "HEADER_NODE",
    "HEADER_RECEIVED_AT",
    "LOGIC_GROUP",
    "SUBJECT_TOKEN",
    "SYNC_SUBJECT",
    "UPSTREAM_SUBJECT",
    "USER_EVENT_SUBJECTS",
    "check_node_id",
    "decode_pushes",
    "decode_upstream",
    "decode_user_event",
    "downstream_subject",
    "encode_pushes",
    "encode_upstream",
    "encode_user_event",
    "msg_id_header",
    "upstream_partition",
    "upstream_subject",
    "user_event_subject",
]

UPSTREAM_SUBJECT = "im.logic.upstream"
"""Prefix of the upstream subjects: ``im.logic.upstream.<partition>``."""
SYNC_SUBJECT = "im.logic.sync"
BROADCAST_REQUEST_SUBJECT = "im.logic.broadcast"
BROADCAST_SUBJECT = "im.access.broadcast"
LOGIC_GROUP = "logic-group"
"""Queue group of the Logic services; ``logic-group-<p>`` are the upstream consumers."""


def upstream_partition(from_user: int, partitions: int) -> int:
    """Messages of one sender share a partition, and a partition is processed in order."""
    return from_user % partitions


def upstream_subject(partition: int) -> str:
    return f"{UPSTREAM_SUBJECT}.{partition}"


HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_NODE = "Im-Node"
HEADER_CONN = "Im-Conn"
HEADER_RECEIVED_AT = "Im-Received-At"

_RECORD = struct.Struct(">QI")  # user_id u64, table length u32, both big-endian
SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_VISIBLE_ASCII = re.compile(r"[!-~]+")
_MSG_ID_HEADER_MAX = 200


def downstream_subject(node_id: str) -> str:
    return f"im.access.{node_id}.downstream"


def user_event_subject(user_id: int) -> str:
    return f"im.user.{user_id}.event"


USER_EVENT_SUBJECTS = "im.user.*.event"
"""What every access node subscribes to: one subscription for all users' events (a kick
is rare; a subscription per user cost ~4.8 KB of the node's memory per connected user,
and a NATS round trip per login)."""


def check_node_id(node_id: str) -> str:
    """A node id is one subject token: dots or wildcards would route to other nodes."""
    if not SUBJECT_TOKEN.fullmatch(node_id):
        raise ValueError(f"node_id {node_id!r} must match [A-Za-z0-9_-]+ (a NATS subject token)")
    return node_id


# ----------------------------------------------------------------------------- envelopes


def msg_id_header(dedupe_key: str) -> str:
    """``Nats-Msg-Id`` for a dedupe key. Client-chosen msg_ids may hold bytes a header
    cannot carry (nats-py strips spaces and turns newlines into spaces, which would make
    distinct ids collide), so anything but visible ASCII is replaced by its SHA-256."""
    if len(dedupe_key) <= _MSG_ID_HEADER_MAX and _VISIBLE_ASCII.fullmatch(dedupe_key):
        return dedupe_key
    return "sha256:" + hashlib.sha256(dedupe_key.encode()).hexdigest()


def encode_upstream(message: Upstream) -> tuple[bytes, dict[str, str]]:
    """Body (a ChatMessage table, timestamp = received_at_ms) and headers of a publish."""
    chat = message.as_chat_message()
    headers = {
        HEADER_MSG_ID: msg_id_header(message.dedupe_key),
        HEADER_NODE: message.node_id,
        HEADER_CONN: str(message.conn_id),
        HEADER_RECEIVED_AT: str(message.received_at_ms),
    }
    return encode_table(chat), headers


def decode_upstream(data: bytes, headers: Mapping[str, str] | None) -> Upstream:
    """Inverse of :func:`encode_upstream`; raises ValueError on a malformed envelope."""
    try:
        chat = decode_table(MsgType.MESSAGE, data)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(chat, ChatMessage):
        raise ValueError("upstream body is not a ChatMessage")
    headers = headers or {}
    return Upstream(
        msg_id=chat.msg_id,
        from_user=chat.from_user,
        to_user=chat.to_user,
        content=chat.content,
        content_type=chat.content_type,
        delivery=chat.delivery,
        group_id=chat.group_id,
        node_id=headers.get(HEADER_NODE, ""),
        conn_id=int(headers.get(HEADER_CONN) or 0),
        received_at_ms=chat.timestamp,
    )


def encode_pushes(pushes: Sequence[Push], max_payload: int) -> list[bytes]:
    """Records ``user_id u64 | length u32 | ChatMessage table``, packed into as few
    payloads as fit ``max_payload`` (a record larger than that goes alone and fails loudly
    at publish rather than being dropped here)."""
    payloads: list[bytes] = []
    current = bytearray()
    for push in pushes:
        table = encode_table(push.message)
        record = _RECORD.pack(push.user_id, len(table)) + table
        if current and len(current) + len(record) > max_payload:
            payloads.append(bytes(current))
            current = bytearray()
        current += record
    if current:
        payloads.append(bytes(current))
    return payloads


def decode_pushes(data: bytes) -> list[Push]:
    """Inverse of :func:`encode_pushes` for one payload; ValueError if malformed."""
    view = memoryview(data)
    pushes: list[Push] = []
    offset = 0
    while offset < len(view):
        if len(view) - offset < _RECORD.size:
            raise ValueError("truncated downstream record header")
        user_id, length = _RECORD.unpack_from(view, offset)
        offset += _RECORD.size
        if length > len(view) - offset:
            raise ValueError("downstream record longer than the payload")
        try:
            message = decode_table(MsgType.MESSAGE, view[offset : offset + length])
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(message, ChatMessage):
            raise ValueError("downstream record is not a ChatMessage")
        pushes.append(Push(user_id, message))
        offset += length
    return pushes


def encode_user_event(event: UserEvent) -> bytes:
    return json.dumps(
        {
            "type": "kick",
            "user_id": event.user_id,
            "conn_ids": list(event.conn_ids),
            "code": event.code,
            "reason": event.reason,
        }
    ).encode()


def decode_user_event(data: bytes) -> UserEvent | None:
    """None for an event type this version does not know (newer peers may send more)."""
    body = json.loads(data)
    if not isinstance(body, dict):
        raise ValueError("user event is not a JSON object")
    if body.get("type") != "kick":
        return None
    return KickEvent(
        user_id=int(body["user_id"]),
        conn_ids=tuple(int(c) for c in body["conn_ids"]),
        code=int(body.get("code", int(Code.KICKED_BY_ADMIN))),
        reason=str(body.get("reason", "")),
    )


# ---------------------------------------------------------------------------- connection
