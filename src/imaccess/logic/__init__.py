"""The reference Logic service: stores messages in per-user inboxes and routes them."""

from .inbox import Inbox, MemoryInbox
from .service import LogicService

__all__ = ["Inbox", "LogicService", "MemoryInbox"]
