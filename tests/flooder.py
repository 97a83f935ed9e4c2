"""A flooding client in its own process (so its CPU is not the node's):
``python -m tests.flooder HOST PORT CA TOKEN COUNT TO_USER`` writes COUNT chat frames as
fast as QUIC takes them, reads every MessageAck, and prints ``refused accepted``."""

from __future__ import annotations

import asyncio
import sys

from imaccess.protocol import AuthRequest, AuthResponse, ChatMessage, Code, MessageAck

from .rawquic import RawPeer


async def main(host: str, port: int, ca: str, token: str, count: int, to_user: int) -> None:
    peer = await RawPeer.connect(host, port, ca)
    control = peer.new_stream()
    peer.send(control, AuthRequest(token, "flooder", "test"))
    auth = await peer.next_of(AuthResponse)
    assert isinstance(auth.body, AuthResponse) and auth.body.code == Code.OK
    print("authenticated", flush=True)
    for start in range(0, count, 100):
        for n in range(start, min(start + 100, count)):
            peer.send(control, ChatMessage(f"f{n}", to_user=to_user, content="x" * 200))
        await asyncio.sleep(0)
    refused = accepted = 0
    while refused + accepted < count:
        ack = (await peer.next_of(MessageAck, timeout=60)).body
        assert isinstance(ack, MessageAck)
        if ack.code == Code.RATE_LIMITED:
            refused += 1
        else:
            accepted += 1
    print(refused, accepted, flush=True)
    peer.close()


if __name__ == "__main__":
    h, p, ca, tok, n, to = sys.argv[1:7]
    asyncio.run(main(h, int(p), ca, tok, int(n), int(to)))
