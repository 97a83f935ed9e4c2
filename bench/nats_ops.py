"""What nats.py costs the process that calls it, per operation, one at a time and many
at once: the client CPU of a JetStream publish (awaiting its PubAck), a core publish
and a message received by a subscription callback.

    .venv/bin/python -m bench.nats_ops [--count 3000] [--concurrency 20]

A nats-server with JetStream (memory storage) is started on a free loopback port.
CPU is this process's (``time.process_time``), so the figures hold on a busy machine.
They explain the chat figures: at a few hundred messages per second each hop handles
one message per wake-up, and what one wake-up costs (the syscalls, the loop turn,
the futures) is several times what the message's own parsing and encoding costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import uvloop
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from imaccess.localcluster import find_binary, free_port, wait_for_tcp

_PAYLOAD = b"x" * 200
_HEADERS = {"Im-Received-At": "1700000000000"}


async def _cpu_per_op(count: int, run: Callable[[], Awaitable[None]]) -> float:
    """Microseconds of this process's CPU per operation."""
    began = time.process_time()
    await run()
    return round((time.process_time() - began) / count * 1e6, 1)


async def measure(url: str, count: int, concurrency: int) -> dict[str, Any]:
    nc = await nats.connect(url)
    receiver = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="OPS", subjects=["ops.>"], storage=StorageType.MEMORY))
    ids = iter(range(10 * count))

    async def publish_one() -> None:
        headers = {**_HEADERS, "Nats-Msg-Id": str(next(ids))}
        await js.publish("ops.up", _PAYLOAD, headers=headers, stream="OPS")

    async def alone() -> None:
        for _ in range(count):
            await publish_one()

    async def together() -> None:
        for _ in range(0, count, concurrency):
            await asyncio.gather(*(publish_one() for _ in range(concurrency)))

    async def core(subject: str, headers: dict[str, str] | None) -> None:
        for _ in range(count):
            await nc.publish(subject, _PAYLOAD, headers=headers)
        await nc.flush()

    received = 0
    everything = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        nonlocal received
        received += 1
        if received == count:
            everything.set()

    await receiver.subscribe("ops.down", cb=on_message)
    await receiver.flush()

    async def delivered(headers: dict[str, str] | None) -> None:
        nonlocal received
        received = 0
        everything.clear()
        await core("ops.down", headers)
        await everything.wait()

    result = {
        "jetstream_publish_one_in_flight_us": await _cpu_per_op(count, alone),
        f"jetstream_publish_{concurrency}_in_flight_us": await _cpu_per_op(count, together),
        "core_publish_us": await _cpu_per_op(count, lambda: core("ops.nowhere", None)),
        "core_publish_with_headers_us": await _cpu_per_op(
            count, lambda: core("ops.nowhere", _HEADERS)
        ),
    }
    # published and received in this process: the receive is what is left after the publish
    plain = await _cpu_per_op(count, lambda: delivered(None))
    with_headers = await _cpu_per_op(count, lambda: delivered(_HEADERS))
    result["received_by_callback_us"] = round(plain - result["core_publish_us"], 1)
    result["received_by_callback_with_headers_us"] = round(
        with_headers - result["core_publish_with_headers_us"], 1
    )
    await nc.close()
    await receiver.close()
    return result


async def main(count: int, concurrency: int) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nats-ops-") as store:
        argv = [find_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js"]
        server = await asyncio.create_subprocess_exec(
            *argv, "-sd", store, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            await wait_for_tcp(port)
            return await measure(f"nats://127.0.0.1:{port}", count, concurrency)
        finally:
            server.terminate()
            await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(main(args.count, args.concurrency)), indent=2))
