"""The embedded gateway as the harness's child process (``python -m bench.loadgen.embedded_server``).

The same as ``imaccess dev`` (``EmbeddedGateway``, settings from ``IMACCESS_*``,
uvloop), plus a command channel on stdin so that the fanout scenario can broadcast: the
in-memory bus lives inside this process, so nothing outside it could. Lines:
``broadcast TEXT`` → ``broadcast-ok MSG_ID``. It prints ``ready HOST PORT`` once
listening and stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys

from imaccess.embedded import EmbeddedGateway
from imaccess.logs import configure_logging
from imaccess.runtime import tune_garbage_collector
from imaccess.settings import load_settings


async def serve() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    gateway = EmbeddedGateway(settings)
    await gateway.start()
    host, port = gateway.address
    print(f"ready {host} {port}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        while line := (await reader.readline()).decode():
            verb, _, text = line.rstrip("\n").partition(" ")
            if verb == "broadcast":
                message = await gateway.logic.broadcast(text)
                print(f"broadcast-ok {message.msg_id}", flush=True)
        stop.set()

    task = loop.create_task(commands())
    await stop.wait()
    task.cancel()
    await gateway.stop()


def main() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    tune_garbage_collector()  # as `imaccess dev` does
    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
