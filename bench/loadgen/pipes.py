"""Whole messages over a multiprocessing pipe whose descriptor an event loop watches.

Watching a descriptor with ``loop.add_reader`` makes it non-blocking, and
``Connection.send`` writes a message over 16 KiB in two writes (its length, then its
body): a reader woken by the first could find the body not there yet and fail with
``BlockingIOError`` (a 4,000-connection ``connect`` run lost a load worker that way). A
message that has begun to arrive is on its way whole, so these wait for the rest.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["receive", "send"]


def receive(pipe: Connection) -> Any:
    fd = pipe.fileno()
    os.set_blocking(fd, True)
    try:
        return pipe.recv()
    finally:
        os.set_blocking(fd, False)


def send(pipe: Connection, message: Any) -> None:
    fd = pipe.fileno()
    os.set_blocking(fd, True)
    try:
        pipe.send(message)
    finally:
        os.set_blocking(fd, False)
