"""Several processes on one UDP port, each datagram steered by its QUIC connection ID.

``SO_REUSEPORT`` alone hashes the 4-tuple: a client that migrates to a new address (or a
NAT that rebinds its port) would land on another worker, which knows nothing of its
connection. So every worker issues server connection IDs whose first byte is its own
index modulo the worker count, and a classic BPF program attached to the reuseport group
picks the socket from that byte (RFC 9000 leaves the CID's content to the server, and
packets to the server carry the server's CID as destination):

* long header (bit 0x80 of byte 0): byte 5 is the DCID length, the DCID starts at byte 6;
* short header: the DCID starts at byte 1 (its length is ours, so not on the wire).

For UDP the kernel runs the program over the payload (it pulls the UDP header first;
``tests/test_workers.py`` checks it). A client's first Initial carries a DCID the client
chose at random, so it lands on worker ``dcid[0] mod N``; that worker answers with a
source CID steered to itself, and the client uses only that worker's CIDs from then on.

Socket ``i`` of the group is the ``i``-th socket bound, and the kernel re-numbers the
group when a member closes: the supervisor therefore keeps every socket open for the
node's whole life and hands socket ``i`` to worker ``i`` (a restarted worker gets the
same socket, and datagrams queue in it while no process reads it). Linux only.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..settings import MAX_WORKERS
from .aioquic_internals import CompactQuicConnection

__all__ = [
    "SO_ATTACH_REUSEPORT_CBPF",
    "SteeredQuicConnection",
    "WorkerListeners",
    "attach_cid_steering",
    "bind_reuseport",
    "cid_steering_program",
    "steered_cid_factory",
    "steered_connection",
]

SO_ATTACH_REUSEPORT_CBPF = 51
"""``<asm-generic/socket.h>``; Python's socket module does not name it."""

# classic BPF opcodes (<linux/filter.h>)
_LD_B_ABS = 0x00 | 0x10 | 0x20  # BPF_LD | BPF_B | BPF_ABS: A = payload[k]
_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K: if A & k goto jt else jf
_JA = 0x05 | 0x00  # BPF_JMP | BPF_JA: skip k instructions
_MOD_K = 0x04 | 0x90 | 0x00  # BPF_ALU | BPF_MOD | BPF_K: A %= k
_RET_A = 0x06 | 0x10  # BPF_RET | BPF_A: return A (the socket index)
_LONG_HEADER_BIT = 0x80
_LONG_DCID_OFFSET = 6  # flags (1), version (4), DCID length (1)
_SHORT_DCID_OFFSET = 1


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def cid_steering_program(workers: int) -> list[tuple[int, int, int, int]]:
    """The program as ``(code, jt, jf, k)``: the DCID's first byte modulo ``workers``.

    The result is always below ``workers`` (an index out of range would make the kernel
    fall back to its hash). A datagram too short to hold the byte aborts the program,
    which returns 0: worker 0 gets the garbage."""
    _check_count(workers)
    return [
        (_LD_B_ABS, 0, 0, 0),
        (_JSET_K, 0, 2, _LONG_HEADER_BIT),
        (_LD_B_ABS, 0, 0, _LONG_DCID_OFFSET),
        (_JA, 0, 0, 1),
        (_LD_B_ABS, 0, 0, _SHORT_DCID_OFFSET),
        (_MOD_K, 0, 0, workers),
        (_RET_A, 0, 0, 0),
    ]


def attach_cid_steering(sock: socket.socket, workers: int) -> None:
    """Attach :func:`cid_steering_program` to the reuseport group of ``sock``."""
    program = cid_steering_program(workers)
    instructions = (_SockFilter * len(program))(*(_SockFilter(*i) for i in program))
    # the kernel copies the instructions during the call: the array need only outlive it
    fprog = _SockFprog(len(program), ctypes.cast(instructions, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))


def bind_reuseport(
    host: str, port: int, count: int, kind: socket.SocketKind, *, backlog: int = 1024
) -> list[socket.socket]:
    """``count`` sockets on one address with ``SO_REUSEPORT``, bound in order (so socket
    ``i`` has index ``i`` in the group); port 0 becomes one free port for all. Datagram
    groups get the CID steering program; stream sockets listen (the kernel hashes TCP,
    which is fine: a TCP connection cannot migrate)."""
    if not sys.platform.startswith("linux"):
        raise OSError("worker processes need Linux (SO_REUSEPORT with a BPF program)")
    family, _, _, _, address = socket.getaddrinfo(host, port, type=kind)[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            address = sock.getsockname()  # the port the first bind chose, for the rest
            if kind == socket.SOCK_STREAM:
                sock.listen(backlog)
        if kind == socket.SOCK_DGRAM:
            attach_cid_steering(sockets[0], count)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def steered_cid_factory(index: int, workers: int) -> Callable[[int], bytes]:
    """Random connection IDs whose first byte is ``index`` modulo ``workers``."""
    _check_count(workers)
    if not 0 <= index < workers:
        raise ValueError(f"worker index {index} outside 0..{workers - 1}")

    def new_cid(length: int) -> bytes:
        cid = bytearray(os.urandom(length))
        first = cid[0] - cid[0] % workers + index
        cid[0] = first if first < 256 else first - workers
        return bytes(cid)

    return new_cid


class SteeredQuicConnection(CompactQuicConnection):
    """A server connection whose every host CID comes from ``new_cid``.

    aioquic draws CIDs from ``os.urandom`` in two places: the first one in ``__init__``
    (replaced here before anything is sent, so the handshake's source CID and transport
    parameters carry the steered one) and the ones ``_replenish_connection_ids`` issues
    in NEW_CONNECTION_ID frames (rewritten here before they are sent).

    ``new_cid`` is a method of a subclass made per worker (:func:`steered_connection`),
    not an attribute of each connection: a connection's ``__dict__`` holds 85 attributes,
    the most its table fits, and an 86th doubled it (1,584 → 3,328 bytes: 1.7 KB per
    connection on every worker of a node)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        first = self._host_cids[0]
        first.cid = self.new_cid(len(first.cid))
        self.host_cid = first.cid
        self._local_initial_source_connection_id = first.cid

    def new_cid(self, length: int) -> bytes:
        raise NotImplementedError("made by steered_connection()")

    def _replenish_connection_ids(self) -> None:
        known = len(self._host_cids)
        super()._replenish_connection_ids()
        for entry in self._host_cids[known:]:
            entry.cid = self.new_cid(len(entry.cid))


def steered_connection(new_cid: Callable[[int], bytes]) -> type[SteeredQuicConnection]:
    """The connection class of a worker whose CIDs come from ``new_cid``."""

    class WorkerQuicConnection(SteeredQuicConnection):
        def new_cid(self, length: int) -> bytes:
            return new_cid(length)

    return WorkerQuicConnection


@dataclass(slots=True)
class WorkerListeners:
    """What a worker process serves on: its socket of the UDP group, its socket of the
    TCP group (when the HTTP listener is on) and the CIDs that steer clients back to it."""

    udp: socket.socket
    tcp: socket.socket | None
    new_cid: Callable[[int], bytes]


def _check_count(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be 1..{MAX_WORKERS}, got {workers}")
