"""Kernel buffers of a UDP socket that carries many QUIC connections.

Linux gives a socket ~208 KiB of receive buffer by default, about a hundred datagrams: a
stall of one loop turn while tens of thousands of connections send overflows it, and
every datagram the kernel drops costs a retransmission a PTO later.
"""

from __future__ import annotations

import contextlib
import logging
import socket

__all__ = ["size_socket_buffers"]

log = logging.getLogger(__name__)

_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; Python names it from 3.12
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


def size_socket_buffers(sock: socket.socket, size: int) -> None:
    """Ask for ``size`` bytes of receive and send buffer; as root, past the system's
    cap (``net.core.rmem_max``/``wmem_max``) too. Says so when the kernel gives less."""
    for option, forced, name in (
        (socket.SO_RCVBUF, _SO_RCVBUFFORCE, "receive"),
        (socket.SO_SNDBUF, _SO_SNDBUFFORCE, "send"),
    ):
        with contextlib.suppress(OSError):  # not root, or not Linux: the capped size
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            sock.setsockopt(socket.SOL_SOCKET, forced, size)
        granted = sock.getsockopt(socket.SOL_SOCKET, option) // 2  # Linux reports double
        if granted < size:
            log.warning(
                "UDP %s buffer is %d bytes, not the %d asked (raise net.core.%smem_max)",
                name,
                granted,
                size,
                "r" if option == socket.SO_RCVBUF else "w",
            )
