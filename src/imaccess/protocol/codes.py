"""Result, error and close codes: one number space shared by every table's ``code`` field
and by the QUIC application close code.

The thousands digit tells a client what to do, so an SDK needs no per-code table:

=========  ===================================================================
range      meaning
=========  ===================================================================
0          success
1000-1999  the request failed; the connection stays open
2000-2999  authentication refused; the connection closes; reconnect only with a new token
3000-3999  the connection closes; reconnect with exponential backoff and jitter, then Sync
4000-4999  the connection closes; do not reconnect automatically
=========  ===================================================================
"""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = ["Code", "Reconnect", "reconnect_for"]


class Reconnect(Enum):
    STAYS_OPEN = "stays open"
    WITH_NEW_TOKEN = "reconnect with a new token"
    WITH_BACKOFF = "reconnect with backoff"
    NEVER = "do not reconnect"


class Code(IntEnum):
    OK = 0

    UNKNOWN_MSG_TYPE = 1001
    """The frame's msg_type is not one this server handles from clients."""
    INVALID_MESSAGE = 1002
    """The payload decoded but a field is missing or out of range."""
    RATE_LIMITED = 1003
    """Too many messages; retry the same msg_id later."""
    ALREADY_AUTHENTICATED = 1004
    """A second AuthRequest on an authenticated connection."""
    UNAVAILABLE = 1005
    """The message could not be accepted now (Logic or bus down); retry the same msg_id."""
    EARLY_DATA_REFUSED = 1006
    """This request is not allowed in 0-RTT early data; send it again after the handshake."""
    FILE_TOO_LARGE = 1010
    """The offered size is over the node's file size limit."""
    FILE_HASH_MISMATCH = 1011
    """The uploaded bytes do not have the offered SHA-256; nothing was kept."""
    FILE_SIZE_MISMATCH = 1012
    """The upload ended before, or ran past, the offered size; nothing was kept."""
    FILE_NOT_FOUND = 1013
    """No such file, or not one this user may fetch (the two are not told apart)."""
    TOO_MANY_TRANSFERS = 1014
    """This connection already has the most file transfers a node allows at once."""
    TRANSFER_STALLED = 1015
    """No bytes arrived for the stall timeout; the upload was reset and nothing was kept."""
    NOT_SUPPORTED_ON_TRANSPORT = 1016
    """Files need QUIC or WebTransport streams; the WebSocket fallback has none."""
    INVALID_OFFER = 1017
    """The offer's name, recipient, size or SHA-256 is missing or malformed."""

    AUTH_INVALID_TOKEN = 2001
    """Bad signature, wrong algorithm, malformed token or missing claims."""
    AUTH_TOKEN_EXPIRED = 2002

    DRAINING = 3001
    """The node is shutting down; reconnect (elsewhere) after the notice's delay."""
    HEARTBEAT_TIMEOUT = 3002
    AUTH_TIMEOUT = 3003
    """No AuthRequest within the deadline after the connection opened."""
    SLOW_CONSUMER = 3004
    """The client stopped reading and its outbound queue hit the bound."""
    NODE_FULL = 3005
    INTERNAL_ERROR = 3006
    TOO_MANY_CONNECTIONS = 3007
    """This client address already holds the most connections a node allows."""
    AUTH_BLOCKED = 3008
    """Too many failed authentications from this address lately; wait, then retry."""

    KICKED_NEW_LOGIN = 4001
    """Replaced by a newer login under the multi-device policy."""
    KICKED_BY_ADMIN = 4002
    PROTOCOL_ERROR = 4003
    """A frame on the wrong stream or in the wrong state (e.g. not Auth first)."""
    MALFORMED_FRAME = 4004
    """Length below 2, a body that is not a Packet, or header/body type mismatch."""
    FRAME_TOO_LARGE = 4005

    @property
    def reconnect(self) -> Reconnect:
        return reconnect_for(int(self))

    @property
    def closes(self) -> bool:
        return self.reconnect is not Reconnect.STAYS_OPEN and self is not Code.OK


def reconnect_for(code: int) -> Reconnect:
    """What a client does on ``code``, including codes newer than this table."""
    if code < 2000:
        return Reconnect.STAYS_OPEN
    if code < 3000:
        return Reconnect.WITH_NEW_TOKEN
    if code < 4000:
        return Reconnect.WITH_BACKOFF
    return Reconnect.NEVER
