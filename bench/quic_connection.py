"""aioquic's server connection as it is against the gateway's ``CompactQuicConnection``,
side by side in one process: memory per established connection, server CPU per
keepalive (a client PING in, the ACK out), and what a long-lived idle connection keeps.

    .venv/bin/python -m bench.quic_connection [--connections 300] [--rounds 20] [--repeats 5]

No sockets and no event loop: client and server state machines exchange datagrams in
memory, so the figures are aioquic's and the gateway's levers alone (the node's own
per-packet work, the loop and the syscalls come on top; ``bench idle`` measures those).
Memory is traced by tracemalloc (the Python heap: OpenSSL's contexts are not in it); CPU
is the best of ``--repeats`` runs, alternating the two kinds, since the machine is shared.
Importing the gateway's module applies its two module-wide levers (shared epoch sets, the
bit-mask packet-number window) to both kinds; the rest is per connection.
"""

from __future__ import annotations

import argparse
import gc
import json
import ssl
import tempfile
import time
import tracemalloc
from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.tls import Epoch

from imaccess.transport.aioquic_internals import (
    CompactQuicConnection,
    ack_now,
    forget_ack_only_packets,
)
from imaccess.transport.certs import ensure_dev_certificate

CLIENT_ADDR = ("192.0.2.1", 40000)
SERVER_ADDR = ("192.0.2.2", 4433)
KINDS: dict[str, type[QuicConnection]] = {
    "aioquic": QuicConnection,
    "compact": CompactQuicConnection,
}


def _configurations() -> tuple[QuicConfiguration, QuicConfiguration]:
    cert, key = ensure_dev_certificate(tempfile.mkdtemp(prefix="bench-quic-"))
    server = QuicConfiguration(is_client=False, alpn_protocols=["im-access"])
    server.load_cert_chain(cert, key)
    client = QuicConfiguration(
        is_client=True, alpn_protocols=["im-access"], server_name="localhost"
    )
    client.verify_mode = ssl.CERT_NONE
    return server, client


def _exchange(client: QuicConnection, server: QuicConnection, now: float) -> None:
    for data, _ in client.datagrams_to_send(now):
        server.receive_datagram(data, CLIENT_ADDR, now)
    for data, _ in server.datagrams_to_send(now):
        client.receive_datagram(data, SERVER_ADDR, now)
    for quic in (client, server):
        while quic.next_event() is not None:
            pass


def establish(
    kind: type[QuicConnection], configurations: tuple[QuicConfiguration, QuicConfiguration]
) -> tuple[QuicConnection, QuicConnection]:
    now = 1000.0
    server_configuration, client_configuration = configurations
    client = QuicConnection(configuration=client_configuration)
    client.connect(SERVER_ADDR, now=now)
    server = kind(
        configuration=server_configuration,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    for _ in range(6):
        _exchange(client, server, now)
        now += 0.001
    assert server._handshake_complete
    if isinstance(server, CompactQuicConnection):
        server.compact()  # what the gateway does on HandshakeCompleted
    return client, server


def keepalive(client: QuicConnection, server: QuicConnection, now: float, gateway: bool) -> float:
    """One PING round; returns the server's CPU seconds for it."""
    client.send_ping(0)
    datagrams = [data for data, _ in client.datagrams_to_send(now)]
    started = time.process_time()
    for data in datagrams:
        server.receive_datagram(data, CLIENT_ADDR, now)
    while server.next_event() is not None:
        pass
    ack_now(server, now)  # as the gateway answers a PING: at once
    replies = [data for data, _ in server.datagrams_to_send(now)]
    if gateway:
        forget_ack_only_packets(server)
    spent = time.process_time() - started
    for data in replies:
        client.receive_datagram(data, SERVER_ADDR, now)
    while client.next_event() is not None:
        pass
    return spent


def heap_per_connection(kind: type[QuicConnection], connections: int) -> float:
    """Traced heap freed by dropping the server side of established pairs."""
    configurations = _configurations()
    gc.collect()
    tracemalloc.start()
    pairs = [establish(kind, configurations) for _ in range(connections)]
    clients = [client for client, _ in pairs]
    servers = [server for _, server in pairs]
    del pairs
    gc.collect()
    with_servers = tracemalloc.get_traced_memory()[0]
    del servers
    gc.collect()
    without_servers = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del clients
    return (with_servers - without_servers) / connections


def run(connections: int, rounds: int, repeats: int) -> dict[str, Any]:
    configurations = _configurations()
    result: dict[str, Any] = {}
    best = dict.fromkeys(KINDS, float("inf"))
    records: dict[str, int] = {}
    gc.disable()
    try:
        for _ in range(repeats):
            for name, kind in KINDS.items():
                pairs = [establish(kind, configurations) for _ in range(connections)]
                now, spent = 2000.0, 0.0
                for _ in range(rounds):
                    now += 30.0
                    for client, server in pairs:
                        spent += keepalive(client, server, now, gateway=name == "compact")
                best[name] = min(best[name], spent / (connections * rounds))
                server = pairs[0][1]
                records[name] = len(server._spaces[Epoch.ONE_RTT].sent_packets)
    finally:
        gc.enable()
    for name, kind in KINDS.items():
        result[name] = {
            "server_heap_per_connection_bytes": round(heap_per_connection(kind, connections)),
            "server_cpu_per_keepalive_us": round(best[name] * 1e6, 1),
            f"sent_packet_records_after_{rounds}_keepalives": records[name],
        }
    result["ratio_compact_to_aioquic"] = {
        "heap": round(
            result["compact"]["server_heap_per_connection_bytes"]
            / result["aioquic"]["server_heap_per_connection_bytes"],
            3,
        ),
        "cpu_per_keepalive": round(
            result["compact"]["server_cpu_per_keepalive_us"]
            / result["aioquic"]["server_cpu_per_keepalive_us"],
            3,
        ),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=20, help="keepalives per connection")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    print(json.dumps(run(options.connections, options.rounds, options.repeats), indent=2))


if __name__ == "__main__":
    main()
