"""The load generator's client QUIC stack: qh3 (default) or aioquic.

Both have the same sans-I/O shape (``QuicConnection``: ``connect``, ``receive_datagram``,
``datagrams_to_send``, ``get_timer``/``handle_timer``, ``next_event``) and the same event
names, but each has its own classes, so event dispatch goes through a :class:`ClientStack`
rather than ``isinstance`` checks against one library's classes. qh3 (a fork of aioquic
with a Rust packet core) costs a half to a third of aioquic's CPU per packet and much
less per handshake, so the generator saturates later than the server it loads; aioquic
is kept for comparison, and the server side is aioquic either way.

qh3's defaults differ from aioquic's in ways the server would notice, so its clients are
configured (:meth:`ClientStack.configuration`) to look like aioquic's: initial RTT 0.1 s
rather than 0.333 (a lost handshake packet is probed again after 0.3 s, not 1 s: with
the exponential backoff from 1 s a ramp's time-to-authenticated p99 reached 20-40 s),
1,200-byte datagrams and no path-MTU probes (qh3 sends three extra datagrams of up to
1,472 bytes after each handshake), and key shares for P-256 and X25519 only: by default qh3 offers
X25519MLKEM768, whose 1.2 KB key share (and ML-KEM key generation on every handshake)
splits the ClientHello over two Initial datagrams, which aioquic servers cannot use
anyway. With P-256 first the server does the same key exchange (P-256) as for an
aioquic client. One difference remains: qh3 does not coalesce the client's last
handshake flight (Initial ACK, Handshake Finished, 1-RTT NEW_CONNECTION_ID) into one
datagram, so a handshake takes the server five client datagrams instead of three.
"""

from __future__ import annotations

import importlib
import ssl
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_STACK", "STACKS", "ClientStack", "load_stack"]

STACKS = ("qh3", "aioquic")
DEFAULT_STACK = "qh3"


@dataclass(frozen=True, slots=True)
class ClientStack:
    name: str
    version: str
    QuicConfiguration: Any
    QuicConnection: Any
    ConnectionIdIssued: type
    ConnectionIdRetired: type
    ConnectionTerminated: type
    HandshakeCompleted: type
    PingAcknowledged: type
    StreamDataReceived: type
    tuning: dict[str, Any]
    """Configuration fields that make this stack's clients behave like aioquic's."""

    def describe(self) -> dict[str, Any]:
        """For the JSON results."""
        return {"name": self.name, "version": self.version, "tuning": self.tuning}

    def configuration(self, *, alpn: str, idle_timeout: float, session_ticket: Any = None) -> Any:
        """A client configuration; the certificate is not verified (self-signed in dev).
        ``session_ticket`` must come from this stack (each has its own ticket class)."""
        return self.QuicConfiguration(
            is_client=True,
            alpn_protocols=[alpn],
            server_name="localhost",
            idle_timeout=idle_timeout,
            verify_mode=ssl.CERT_NONE,
            session_ticket=session_ticket,
            **self.tuning,
        )


_QH3_TUNING: dict[str, Any] = {
    "initial_rtt": 0.1,
    "max_datagram_size": 1200,
    "probe_datagram_size": False,
    "offer_ec_key_shares": True,
}
_loaded: dict[str, ClientStack] = {}


def _qh3_connection_class() -> Any:
    """qh3's QuicConnection offering P-256 and X25519 key shares, not X25519MLKEM768.

    qh3 has no configuration field for the TLS groups: they are set on the TLS context
    as it is created (``_create_tls``, private; if a qh3 release drops either, its
    defaults stay and only the ClientHello differs)."""
    from qh3 import tls
    from qh3.quic.connection import QuicConnection

    groups = [tls.Group.SECP256R1, tls.Group.X25519]

    class Qh3Connection(QuicConnection):
        def _create_tls(self, *args: Any, **kwargs: Any) -> Any:
            bridge = super()._create_tls(*args, **kwargs)
            context = getattr(bridge, "tls", None)
            if context is not None and hasattr(context, "_supported_groups"):
                context._supported_groups = list(groups)
            return bridge

    if not hasattr(QuicConnection, "_create_tls"):
        return QuicConnection
    return Qh3Connection


def load_stack(name: str) -> ClientStack:
    """Import one stack's modules (only that one: a worker never loads both)."""
    if name not in STACKS:
        raise ValueError(f"unknown client stack {name!r}; one of {', '.join(STACKS)}")
    stack = _loaded.get(name)
    if stack is None:
        package = importlib.import_module(name)
        configuration = importlib.import_module(f"{name}.quic.configuration")
        connection = importlib.import_module(f"{name}.quic.connection")
        events = importlib.import_module(f"{name}.quic.events")
        stack = ClientStack(
            name=name,
            version=str(getattr(package, "__version__", "?")),
            QuicConfiguration=configuration.QuicConfiguration,
            QuicConnection=(
                _qh3_connection_class() if name == "qh3" else connection.QuicConnection
            ),
            ConnectionIdIssued=events.ConnectionIdIssued,
            ConnectionIdRetired=events.ConnectionIdRetired,
            ConnectionTerminated=events.ConnectionTerminated,
            HandshakeCompleted=events.HandshakeCompleted,
            PingAcknowledged=events.PingAcknowledged,
            StreamDataReceived=events.StreamDataReceived,
            tuning=dict(_QH3_TUNING) if name == "qh3" else {},
        )
        _loaded[name] = stack
    return stack
