"""WebTransport over HTTP/3 on the raw-QUIC port: the browser's way in.

A QUIC connection that negotiates ALPN ``h3`` (instead of ``im-access``) is handed by its
:class:`~imaccess.transport.quic.QuicPeer` to a :class:`WebTransportHandler`, which runs
aioquic's ``H3Connection`` (WebTransport draft-02, what Chromium speaks) over the same
``QuicConnection``. An extended CONNECT with ``:protocol webtransport`` on
:data:`WEBTRANSPORT_PATH` is answered ``:status 200`` (the stream stays open: it is the
session); anything else gets 404. Each client-initiated bidirectional WebTransport stream of
the session then carries frames exactly like a raw-QUIC client bidi stream: the first is
the control stream, the second the message stream. Client unidirectional WebTransport
streams are file uploads and downloads go out on server-opened ones, as on raw QUIC
(PROTOCOL.md "Files"). Stream data after the WebTransport
stream header is raw bytes (aioquic strips the header), and replies are written with
``send_stream_data`` on the same QUIC stream.

Closing sends the in-band frame first (the session does that), then closes the whole QUIC
connection with the code: browsers have been seen not to report session close codes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.events import QuicEvent, StopSendingReceived, StreamReset

from ..protocol.codes import Code
from .streams import QuicFileStreams, send_or_drop

if TYPE_CHECKING:
    from ..connection import Connection
    from .quic import QuicPeer

__all__ = ["WEBTRANSPORT_ALPN", "WEBTRANSPORT_PATH", "WebTransportHandler", "WebTransportSession"]

WEBTRANSPORT_ALPN = "h3"
"""ALPN of HTTP/3; offered next to ``im-access`` on the same UDP port."""
WEBTRANSPORT_PATH = "/im"
"""The path of the extended CONNECT that opens an imaccess WebTransport session."""

log = logging.getLogger(__name__)


class WebTransportSession:
    """The ``Transport`` of a Connection whose streams are WebTransport streams."""

    kind = "webtransport"

    def __init__(self, peer: QuicPeer, session_id: int, h3: H3Connection) -> None:
        self._peer = peer
        self.session_id = session_id
        self.file_streams = QuicFileStreams(
            peer, lambda: h3.create_webtransport_stream(session_id, is_unidirectional=True)
        )

    @property
    def remote_address(self) -> tuple[str, int]:
        return self._peer.remote_address

    def send(self, stream_id: int, data: bytes) -> None:
        send_or_drop(self._peer.quic, stream_id, data)

    def transmit(self) -> None:
        self._peer.transmit()

    def buffered_bytes(self) -> int:
        return self._peer.buffered_bytes()

    resumed_user = 0
    """Early data is a raw QUIC feature only (PROTOCOL.md "0-RTT")."""

    def bind_identity(self, user_id: int, expires_at: float) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        """The peer closes once the in-band frame has been acknowledged: browsers do not
        report QUIC close codes, so that frame is how they learn why."""
        self._peer.close(code, reason)


class WebTransportHandler:
    """HTTP/3 on one QUIC connection: at most one WebTransport session, at ``/im``."""

    def __init__(self, peer: QuicPeer) -> None:
        self._peer = peer
        self._h3 = H3Connection(peer.quic, enable_webtransport=True)
        self._session: WebTransportSession | None = None

    def handle_event(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset | StopSendingReceived):
            connection = self._peer.connection
            if connection is not None:
                connection.stream_aborted(event.stream_id)
        for h3_event in self._h3.handle_event(event):
            self._on_h3_event(h3_event)

    def _on_h3_event(self, event: H3Event) -> None:
        if isinstance(event, WebTransportStreamDataReceived):
            self._on_stream_data(event)
        elif isinstance(event, HeadersReceived):
            self._on_headers(event)
        elif (
            isinstance(event, DataReceived)
            and event.stream_ended
            and self._session is not None
            and event.stream_id == self._session.session_id
        ):
            # the client ended the CONNECT stream: the session is over
            self._peer.close(int(Code.OK), "WebTransport session closed by the client")

    def _on_headers(self, event: HeadersReceived) -> None:
        headers = dict(event.headers)
        stream_id = event.stream_id
        if (
            headers.get(b":method") != b"CONNECT"
            or headers.get(b":protocol") != b"webtransport"
            or headers.get(b":path") != WEBTRANSPORT_PATH.encode()
        ):
            self._h3.send_headers(stream_id, [(b":status", b"404")], end_stream=True)
            return
        if self._session is not None:  # one imaccess session per QUIC connection
            self._h3.send_headers(stream_id, [(b":status", b"409")], end_stream=True)
            return
        self._session = WebTransportSession(self._peer, stream_id, self._h3)
        self._h3.send_headers(stream_id, [(b":status", b"200")])
        # the auth deadline starts now; a refusal closes the QUIC connection with its code
        self._peer.open(self._session)

    def _on_stream_data(self, event: WebTransportStreamDataReceived) -> None:
        session = self._session
        stream_id = event.stream_id
        if session is None or event.session_id != session.session_id:
            self._peer.quic.stop_stream(stream_id, int(Code.PROTOCOL_ERROR))
            return
        connection: Connection | None = self._peer.connection
        if stream_id & 0x1:  # server-initiated: nothing arrives on those
            return
        if stream_id & 0x2:  # client unidirectional: a file upload
            if connection is not None:
                connection.receive_upload(stream_id, event.data, event.stream_ended)
            return
        if connection is not None and event.data:
            connection.receive(
                stream_id, event.data, self._peer.now(), early_data=not self._peer.handshake_done
            )
