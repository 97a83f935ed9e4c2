"""One upstream partition as a Logic worker consumes it, on JetStream's raw pull API.

Each partition has a durable consumer ``logic-group-<p>`` in the priority group
``logic`` with the ``pinned_client`` policy (nats-server 2.11+): the server hands the
partition's messages to one pull client at a time, names it in the ``Nats-Pin-Id``
header, answers other clients' requests that carry a stale pin id with status 423, and
moves the pin to a waiting client once the pinned one has sent no request for
``priority_timeout`` or an admin unpins it. nats-py 2.16 knows neither the config fields
nor the request's ``group``/``id``, so this module speaks the JSON API itself (ADR-42).

The pin alone does not keep order across a hand-over: the previous holder may have died
holding messages, which JetStream redelivers only after ``ack_wait``, while newer ones
flow to the new holder at once. So a worker that finds itself newly pinned processes
nothing of the partition until the consumer's ``num_ack_pending`` equals the number of
messages it holds (the take-over check, :meth:`Partition.settle`): then every message
that was ever delivered and not acked is in its hands, and it processes them by stream
sequence. The count in hand is taken *before* asking, so a message delivered meanwhile
can only make the check fail (ask again), never pass early.
"""

from __future__ import annotations

import json
import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..bus import BusUnavailable
from ..nats_envelope import LOGIC_GROUP, upstream_subject
from ..settings import NatsSettings

__all__ = ["PRIORITY_GROUP", "Partition", "ensure_consumer"]

PRIORITY_GROUP = "logic"
_API = "$JS.API.CONSUMER"
PIN_TIMEOUT = 5.0
"""Seconds without a request from the pinned worker before the server moves the pin: how
long a dead worker's *idle* partitions wait (those it died holding messages of wait for
their redelivery, ``ack_wait``, as before). A live worker always has a request open, even
mid-batch (the 408 of one is answered with the next from the subscription's callback),
so only a loop stalled this long loses a pin, and the take-over check keeps the order
even then."""
_LATE = 1.0
"""Seconds past a request's expiry after which it is taken as lost (a reconnect ate its
408), so the worker asks again instead of waiting forever."""


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


async def ensure_consumer(
    nc: NATS, settings: NatsSettings, partition: int, max_ack_pending: int
) -> None:
    """Create the partition's consumer, or bring an existing one to this config (a
    consumer of the one-in-flight worker gains the priority group in place; its ack
    policy, explicit, cannot change and need not)."""
    name = f"{LOGIC_GROUP}-{partition}"
    config = {
        "name": name,
        "durable_name": name,
        "deliver_policy": "all",
        "ack_policy": "explicit",
        "ack_wait": _ns(settings.ack_wait),
        "max_ack_pending": max_ack_pending,
        "filter_subject": upstream_subject(partition),
        "priority_groups": [PRIORITY_GROUP],
        "priority_policy": "pinned_client",
        "priority_timeout": _ns(min(settings.ack_wait, PIN_TIMEOUT)),
    }
    body = json.dumps({"stream_name": settings.stream, "config": config}).encode()
    reply = await nc.request(
        f"{_API}.CREATE.{settings.stream}.{name}", body, timeout=settings.request_timeout
    )
    error = json.loads(reply.data).get("error")
    if error:
        raise BusUnavailable(f"consumer {name}: {error.get('description', error)}")


class Partition:
    """What one worker knows of one partition's consumer."""

    def __init__(self, index: int, stream: str) -> None:
        self.index = index
        consumer = f"{LOGIC_GROUP}-{index}"
        self.next_subject = f"{_API}.MSG.NEXT.{stream}.{consumer}"
        self.info_subject = f"{_API}.INFO.{stream}.{consumer}"
        self.unpin_subject = f"{_API}.UNPIN.{stream}.{consumer}"
        self.sub: Subscription | None = None
        self.inbox = ""
        self.pin: str | None = None
        """The pin id of this worker's requests, once the server named one."""
        self.settled = False
        """The take-over check passed since ``pin`` was given."""
        self.credit = 0
        """Messages the server may still send on this worker's open requests."""
        self.deadline = 0.0
        self.held: dict[int, Msg] = {}
        """Delivered and not yet acked, by stream sequence (a redelivery replaces)."""
        self.retry_at = 0.0
        self.check_at = 0.0

    def received(self, msg: Msg) -> bool:
        """Account for what arrived on the inbox; True when it is a message to process."""
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None:
            if status != "100":  # 408 expired, 409 ended, 423 pin lost: a request is over
                left = headers.get("Nats-Pending-Messages", "")
                self.credit = max(0, self.credit - int(left)) if left.isdigit() else 0
            if status == "423":
                self.pin, self.settled = None, False
            return False
        self.credit = max(0, self.credit - 1)
        pin = headers.get("Nats-Pin-Id")
        if pin != self.pin:
            self.pin, self.settled = pin, False
        self.held[msg.metadata.sequence.stream] = msg
        return True

    def request(self, batch: int, expires: float) -> bytes | None:
        """The next pull request when the open ones run low, else None."""
        now = time.monotonic()
        if now > self.deadline:
            self.credit = 0  # whatever was open has expired, or was lost in a reconnect
        if self.credit > batch // 2:
            return None
        self.credit += batch
        self.deadline = now + expires + _LATE
        body: dict[str, Any] = {"batch": batch, "expires": _ns(expires), "group": PRIORITY_GROUP}
        if self.pin is not None:
            body["id"] = self.pin
        return json.dumps(body).encode()

    def open(self) -> bool:
        """A request of this worker may still deliver."""
        return self.credit > 0 and time.monotonic() <= self.deadline

    async def settle(self, nc: NATS, timeout: float, interval: float) -> bool:
        """The take-over check (module docstring); asks at most once per ``interval``."""
        if self.settled:
            return True
        now = time.monotonic()
        if now < self.check_at:
            return False
        self.check_at = now + interval
        in_hand = len(self.held)
        info = json.loads((await nc.request(self.info_subject, b"", timeout=timeout)).data)
        groups = info.get("priority_groups") or [{}]
        pinned = groups[0].get("pinned_client_id")
        self.settled = pinned == self.pin and info.get("num_ack_pending") == in_hand
        return self.settled

    async def unpin(self, nc: NATS, timeout: float) -> None:
        """Let the pin go (this worker holds nothing more) so a waiting worker gets it
        now; only if it is still ours, not a successor's."""
        pin, self.pin, self.settled = self.pin, None, False
        info = json.loads((await nc.request(self.info_subject, b"", timeout=timeout)).data)
        groups = info.get("priority_groups") or [{}]
        if pin is not None and groups[0].get("pinned_client_id") == pin:
            body = json.dumps({"group": PRIORITY_GROUP}).encode()
            await nc.request(self.unpin_subject, body, timeout=timeout)
