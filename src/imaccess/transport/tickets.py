"""Session tickets the QUIC server issued, for resumption and 0-RTT (PROTOCOL.md "0-RTT")."""

from __future__ import annotations

from dataclasses import dataclass

from aioquic.tls import SessionTicket

__all__ = ["Ticket", "TicketStore"]


@dataclass(slots=True)
class Ticket:
    ticket: SessionTicket
    user_id: int = 0
    """The user the issuing connection authenticated as; 0 until it does."""
    expires_at: float = 0.0
    """Wall-clock end of that identity (the token's ``exp``)."""


class TicketStore:
    """Bounded and single use, so a replayed ClientHello finds its ticket gone and its
    early data is never decrypted twice. Per process: with worker processes, a resumed
    connection lands on a random worker and resumes only on the one that issued it."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._tickets: dict[bytes, Ticket] = {}
        self._capacity = capacity

    def add(self, ticket: SessionTicket) -> Ticket:
        if len(self._tickets) >= self._capacity:
            self._tickets.pop(next(iter(self._tickets)))
        entry = self._tickets[ticket.ticket] = Ticket(ticket)
        return entry

    def pop(self, label: bytes) -> Ticket | None:
        return self._tickets.pop(label, None)
