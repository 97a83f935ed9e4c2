"""Encode and decode cost of a chat frame: the FlatBuffers runtime (generated code) and
imaccess's one-pass table writer/reader (``imaccess.protocol.flat``), side by side.

    .venv/bin/python bench/codec.py [--seconds 2]

Prints microseconds per operation and the ratios; both paths produce bytes the other
reads (tests/test_codec.py checks that).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import flatbuffers

from imaccess.protocol import ChatMessage, MessageAck, Packet
from imaccess.protocol._generated import message_generated as fb
from imaccess.protocol.codec import _build_chat, decode_frame, encode_packet
from imaccess.protocol.framing import FrameDecoder, encode_frame

CHAT = ChatMessage("0123456789abcdef0123456789abcdef", 12345, 67890, "x" * 100, 0, 1, 42)
ACK = MessageAck("0123456789abcdef0123456789abcdef", 0, 123, 1_732_850_000_000)


def _runtime_frame(seq: int, msg_type: int, payload: bytes, timestamp: int) -> bytes:
    b = flatbuffers.Builder(len(payload) + 48)
    vector = b.CreateByteVector(payload)
    fb.PacketStart(b)
    fb.PacketAddSeq(b, seq)
    fb.PacketAddMsgType(b, msg_type)
    fb.PacketAddTimestamp(b, timestamp)
    fb.PacketAddPayload(b, vector)
    b.Finish(fb.PacketEnd(b))
    return encode_frame(msg_type, bytes(b.Output()))


def runtime_chat_frame(m: ChatMessage) -> bytes:
    b = flatbuffers.Builder(256)
    b.Finish(_build_chat(b, m))  # the runtime builder the codec still uses inside SyncResponse
    return _runtime_frame(7, 10, bytes(b.Output()), 1_732_850_000_000)


def runtime_ack_frame(a: MessageAck) -> bytes:
    b = flatbuffers.Builder(128)
    msg_id = b.CreateString(a.msg_id)
    fb.MessageAckStart(b)
    fb.MessageAckAddMsgId(b, msg_id)
    fb.MessageAckAddCode(b, a.code)
    fb.MessageAckAddServerSeq(b, a.server_seq)
    fb.MessageAckAddTimestamp(b, a.timestamp)
    fb.MessageAckAddDuplicate(b, a.duplicate)
    b.Finish(fb.MessageAckEnd(b))
    return _runtime_frame(7, 11, bytes(b.Output()), 0)


def runtime_decode_chat(body: bytes) -> ChatMessage:
    packet = fb.Packet.GetRootAs(body, 0)
    payload = packet._tab.Bytes
    start = packet._tab.Vector(packet._tab.Offset(10))
    t = fb.ChatMessage.GetRootAs(payload, start)
    return ChatMessage(
        msg_id=(t.MsgId() or b"").decode(),
        from_user=t.FromUser(),
        to_user=t.ToUser(),
        content=(t.Content() or b"").decode(),
        content_type=t.ContentType(),
        timestamp=t.Timestamp(),
        seq=t.Seq(),
        group_id=t.GroupId(),
    )


def per_op(fn: Callable[[], object], seconds: float) -> float:
    """CPU microseconds per call (this process's CPU time, so another process on the
    machine does not count), best of three runs of ``seconds / 3``."""
    best = float("inf")
    for _ in range(3):
        count, started = 0, time.process_time()
        deadline = started + seconds / 3
        while time.process_time() < deadline:
            for _ in range(100):
                fn()
            count += 100
        best = min(best, (time.process_time() - started) / count * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    packet = Packet(7, CHAT, 1_732_850_000_000)
    frame = FrameDecoder().feed(encode_packet(packet))[0]
    runtime_body = FrameDecoder().feed(runtime_chat_frame(CHAT))[0].body
    results = {}
    for name, runtime, ours in [
        (
            "encode ChatMessage frame",
            lambda: runtime_chat_frame(CHAT),
            lambda: encode_packet(packet),
        ),
        (
            "encode MessageAck frame",
            lambda: runtime_ack_frame(ACK),
            lambda: encode_packet(Packet(7, ACK)),
        ),
        (
            "decode ChatMessage frame",
            lambda: runtime_decode_chat(runtime_body),
            lambda: decode_frame(frame),
        ),
    ]:
        a, b = per_op(runtime, args.seconds), per_op(ours, args.seconds)
        results[name] = {
            "runtime_us": round(a, 2),
            "imaccess_us": round(b, 2),
            "speedup": round(a / b, 2),
        }
        print(f"{name:28s} runtime {a:7.2f} µs   imaccess {b:7.2f} µs   {a / b:5.1f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
